# hack/testenv/node.sh: the real node of scripts/testenv (sourced by it).
#
# One Kubernetes node on this machine: containerd + runc (Debian packages), the
# CNI bridge plugin, a kubelet and kube-proxy built from the same
# k8s.io/kubernetes module as the control plane. Everything the node does is
# contained so that `down` can take all of it away:
#
#   network  a network namespace joined to this machine by a veth pair: the host side holds $host_address (what pods reach: the API
#            server and test servers listen there), the node side holds
#            $node_address (the kubelet). Pods get addresses of $pod_cidr on a
#            bridge inside the namespace; kube-proxy's and the kubelet's
#            iptables rules live there too. The namespace dies with the node's
#            last process, and with it the bridge, the veths, the routes and
#            every rule.
#   mounts   a mount namespace (slave of the host's) in
#            which $node_dir is bound to /run/acp-node and containerd's fixed
#            paths (/run/containerd, /var/lib/cni, /var/log/containers) are
#            private. Container root filesystems, volume mounts and pod network
#            namespaces are mounted there and vanish with it. A "holder"
#            process creates both namespaces; every node process joins them.
#   cgroups  <our cgroup>/acp-<id>/node holds the daemons (and containerd's
#            shims), <our cgroup>/acp-<id>/pods is the kubelet's cgroupRoot.
#            `down` freezes and kills the whole tree, then removes it.
#   sysctls  the kubelet insists on six kernel settings (protectKernelDefaults);
#            `up` records the old values and `down` puts them back.
#
# Variables used from scripts/testenv: state_dir, repo, bins (binary dir),
# say, die, start-style helpers.

node_runtime=/run/acp-node   # $node_dir as the node's processes see it
node_name=acp-node
kubelet_sysctls=(vm.overcommit_memory=1 vm.panic_on_oom=0 kernel.panic=10 kernel.panic_on_oops=1
  kernel.keys.root_maxkeys=1000000 kernel.keys.root_maxbytes=25000000)
node_components=(node-holder containerd kubelet kube-proxy)

# Names and addresses, derived from the state directory so that two
# environments (tests and the quickstart) get distinct nodes.
node_vars() {
  node_id=$(printf '%s' "$state_dir" | sha256sum | cut -c1-8)
  local index=$(( 16#${node_id:0:4} % 250 + 1 ))
  node_host_if=acp$node_id
  host_address=10.213.$index.1
  node_address=10.213.$index.2
  pod_cidr=10.214.$index.0/24
  node_dir=$state_dir/node
}

# Why this machine cannot run the node, or nothing when it can.
node_unsupported() {
  [[ $(id -u) == 0 ]] || { echo "the node needs root (containerd, network namespaces, cgroups)"; return; }
  local cmd
  for cmd in containerd runc ctr ip iptables nsenter unshare buildah mmdebstrap catatonit; do
    command -v "$cmd" >/dev/null || { echo "$cmd is not installed (scripts/setup installs it)"; return; }
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] \
    || { echo "the CNI plugins are not installed (containernetworking-plugins)"; return; }
}

in_netns() { nsenter --target "$(pid_of node-holder)" --net -- "$@"; }

# Runs a command inside the node (its network and mount namespaces).
node_exec() {
  nsenter --target "$(pid_of node-holder)" --mount --net -- "$@"
}

# --- cgroups --------------------------------------------------------------------

# The cgroup hierarchies mounted here (v1 controllers, the named systemd one,
# the unified one of a hybrid host, or the single v2 tree).
cgroup_mounts() {
  awk '$9 == "cgroup" || $9 == "cgroup2" {print $5}' /proc/self/mountinfo
}

# Our own cgroup path, which the node's tree nests under (the memory
# controller's on v1, where a sandbox accounts memory; the unified one on v2).
cgroup_parent() {
  local line path=""
  while IFS= read -r line; do
    case $line in
      *:memory:*) path=${line#*:memory:} ;;
      0::*) [[ -n $path ]] || path=${line#0::} ;;
    esac
  done < /proc/self/cgroup
  path=${path%/}
  printf '%s\n' "${path:-}"
}

node_cgroup() { printf '%s/acp-%s\n' "$(cat "$node_dir/cgroup-parent" 2>/dev/null || cgroup_parent)" "$node_id"; }

cgroup_setup() {
  local parent mount rel dir
  parent=$(cgroup_parent)
  printf '%s\n' "$parent" > "$node_dir/cgroup-parent"
  : > "$node_dir/cgroups.created"
  while IFS= read -r mount; do
    for rel in node pods; do
      dir=$mount
      local part
      IFS=/ read -ra parts <<< "${parent#/}/acp-$node_id/$rel"
      for part in "${parts[@]}"; do
        [[ -n $part ]] || continue
        local parent_dir=$dir
        dir=$dir/$part
        [[ -d $dir ]] && continue
        mkdir "$dir"
        printf '%s\n' "$dir" >> "$node_dir/cgroups.created"
        # A new cpuset cgroup starts empty: inherit the parent's CPUs and memory nodes.
        if [[ -f $dir/cpuset.cpus ]]; then
          cat "$parent_dir/cpuset.cpus" > "$dir/cpuset.cpus"
          cat "$parent_dir/cpuset.mems" > "$dir/cpuset.mems"
        fi
      done
    done
    # cgroup v2: let the node's subtrees use the controllers we have.
    if [[ -f $mount/cgroup.subtree_control && $mount == /sys/fs/cgroup ]]; then
      local c path=$mount
      for part in "${parts[@]:0:${#parts[@]}-1}"; do
        [[ -n $part ]] || continue
        for c in cpu memory pids; do echo "+$c" > "$path/cgroup.subtree_control" 2>/dev/null || true; done
        path=$path/$part
      done
    fi
  done < <(cgroup_mounts)
}

# Moves the calling (sub)shell into the node daemons' cgroup in every hierarchy.
cgroup_enter() {
  local mount cg; cg=$(node_cgroup)/node
  while IFS= read -r mount; do
    [[ -d $mount$cg ]] && echo "$BASHPID" > "$mount$cg/cgroup.procs"
  done < <(cgroup_mounts)
}

# Kills every process in the node's cgroup tree (daemons, shims, containers)
# and removes the tree, including the parents `up` created.
cgroup_teardown() {
  local cg mount tree deadline
  cg=$(node_cgroup)
  while IFS= read -r mount; do
    tree=$mount$cg
    [[ -d $tree ]] || continue
    # Freeze first so nothing forks while it is being killed.
    [[ -f $tree/freezer.state ]] && echo FROZEN > "$tree/freezer.state" 2>/dev/null
    if [[ -f $tree/cgroup.kill ]]; then
      echo 1 > "$tree/cgroup.kill" 2>/dev/null || true
    fi
    find "$tree" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    [[ -f $tree/freezer.state ]] && echo THAWED > "$tree/freezer.state" 2>/dev/null
  done < <(cgroup_mounts)
  deadline=$((SECONDS + 10))
  while IFS= read -r mount; do
    tree=$mount$cg
    [[ -d $tree ]] || continue
    until [[ -z $(find "$tree" -name cgroup.procs -exec cat {} + 2>/dev/null) ]]; do
      (( SECONDS < deadline )) || { say "warning: processes remain in $tree"; break; }
      find "$tree" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
      sleep 0.1
    done
    find "$tree" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done < <(cgroup_mounts)
  if [[ -f $node_dir/cgroups.created ]]; then
    tac "$node_dir/cgroups.created" | while IFS= read -r dir; do rmdir "$dir" 2>/dev/null || true; done
    rm -f "$node_dir/cgroups.created"
  fi
}

# --- network --------------------------------------------------------------------

net_up() {
  if ip -4 -o addr show | awk '{print $4}' | grep -qx "$host_address/30"; then
    die "$host_address is already in use; another environment's node may hold it (scripts/testenv --dir DIR down)"
  fi
  local holder; holder=$(pid_of node-holder)
  ip link add "$node_host_if" type veth peer name "n$node_id"
  ip link set "n$node_id" netns "$holder"
  ip addr add "$host_address/30" dev "$node_host_if"
  ip link set "$node_host_if" up
  in_netns ip link set lo up
  in_netns ip link set "n$node_id" name eth0
  in_netns ip addr add "$node_address/30" dev eth0
  in_netns ip link set eth0 up
  in_netns ip route add default via "$host_address"
  # Forwarding between the pod bridge and the veth, and bridged traffic seen by
  # kube-proxy's rules: both per network namespace, so the host keeps its own.
  in_netns sysctl -qw net.ipv4.ip_forward=1
  in_netns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  ip route add "$pod_cidr" via "$node_address" dev "$node_host_if"
}

net_down() {
  # The veth pair goes with the namespace; this covers a namespace still held
  # by a process that escaped the cgroup.
  ip link del "$node_host_if" 2>/dev/null || true
}

# --- sysctls --------------------------------------------------------------------

sysctls_set() {
  local kv key
  if [[ ! -f $node_dir/sysctls.orig ]]; then
    for kv in "${kubelet_sysctls[@]}"; do
      key=${kv%%=*}
      printf '%s=%s\n' "$key" "$(sysctl -n "$key")"
    done > "$node_dir/sysctls.orig"
  fi
  for kv in "${kubelet_sysctls[@]}"; do sysctl -qw "$kv"; done
}

sysctls_restore() {
  [[ -f $node_dir/sysctls.orig ]] || return 0
  # Another environment's node still needs them.
  if ip -br link 2>/dev/null | awk '{print $1}' | grep -v "^$node_host_if\$" | grep -Eq '^acp[0-9a-f]{8}$'; then
    rm -f "$node_dir/sysctls.orig"; return 0
  fi
  local kv
  while IFS= read -r kv; do sysctl -qw "$kv" || true; done < "$node_dir/sysctls.orig"
  rm -f "$node_dir/sysctls.orig"
}

# --- configuration ----------------------------------------------------------------

node_certs() {
  local pki=$state_dir/pki
  issue_cert kubelet-client "/O=system:nodes/CN=system:node:$node_name" clientAuth
  issue_cert kubelet-serving "/CN=$node_name" serverAuth "IP:$node_address,DNS:$node_name"
  issue_cert kube-proxy "/CN=system:kube-proxy" clientAuth
  mkdir -p "$node_dir/pki"
  cp "$pki/ca.crt" "$pki/kubelet-serving.crt" "$pki/kubelet-serving.key" "$node_dir/pki/"
  write_kubeconfig_for "$node_dir/kubelet.kubeconfig" kubelet-client
  write_kubeconfig_for "$node_dir/kube-proxy.kubeconfig" kube-proxy
}

node_configs() {
  local pause_image=$1 cg; cg=$(node_cgroup)
  cat > "$node_dir/containerd.toml" <<EOF
version = 2
root = "$node_runtime/containerd/root"
state = "$node_runtime/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$node_runtime/containerd.sock"
[ttrpc]
  address = "$node_runtime/containerd.ttrpc.sock"
[debug]
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "$node_runtime/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # This VM lacks CAP_SYS_RESOURCE: a negative oom_score_adj would fail.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node_runtime/cni/net.d"
EOF
  cat > "$node_dir/cni/net.d/10-acp.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "acp",
  "plugins": [{
    "type": "bridge", "bridge": "acpbr0", "isGateway": true, "isDefaultGateway": true,
    "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]], "dataDir": "$node_runtime/cni/ipam"}
  }]
}
EOF
  cat > "$node_dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_address
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
containerRuntimeEndpoint: unix://$node_runtime/containerd.sock
# containerd 1.6 has no RuntimeConfig RPC, so the kubelet takes the driver from here.
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: $cg/pods
failSwapOn: false
podLogsDir: $node_runtime/pod-logs
tlsCertFile: $node_runtime/pki/kubelet-serving.crt
tlsPrivateKeyFile: $node_runtime/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $node_runtime/pki/ca.crt}
authorization: {mode: Webhook}
# A test node: no image garbage collection, no eviction, no host sysctl writes
# (scripts/testenv sets and restores them).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "0%"}
localStorageCapacityIsolation: false
protectKernelDefaults: true
serializeImagePulls: false
resolvConf: /etc/resolv.conf
EOF
  cat > "$node_dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $node_runtime/kube-proxy.kubeconfig}
hostnameOverride: $node_name
mode: iptables
clusterCIDR: $pod_cidr
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host-wide conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
EOF
}

# --- lifecycle --------------------------------------------------------------------

# Directories on the host that the node's private mounts cover (created empty
# when missing and removed again by `down`).
node_mountpoints=(/run/acp-node /run/containerd /var/lib/cni /var/log/containers)

node_start() {
  local name=$1; shift
  ( cgroup_enter; exec setsid nsenter --target "$(pid_of node-holder)" --mount --net -- "$@" ) \
    > "$state_dir/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$state_dir/$name.pid"
}

# Before the control plane: the node's namespaces, cgroups and network, so
# the API server can listen on $host_address.
node_prepare() {
  local mp
  mkdir -p "$node_dir"
  # A fresh node each time, but keep containerd's image store.
  find "$node_dir" -mindepth 1 -maxdepth 1 ! -name containerd -exec rm -rf {} +
  mkdir -p "$node_dir/containerd" "$node_dir/cni/net.d" "$node_dir/cni/ipam" "$node_dir/cni/state" \
    "$node_dir/container-logs" "$node_dir/pod-logs"
  rm -rf "$node_dir/containerd/state" "$node_dir/containerd/root/io.containerd.grpc.v1.cri"
  sysctls_set
  cgroup_setup
  : > "$node_dir/mountpoints.created"
  for mp in "${node_mountpoints[@]}"; do
    [[ -d $mp ]] || { mkdir -p "$mp"; printf '%s\n' "$mp" >> "$node_dir/mountpoints.created"; }
  done
  # The holder: creates the node's network and mount namespaces and keeps them.
  ( cgroup_enter; exec setsid unshare --net --mount --propagation slave -- sh -c '
        mount --bind "$1" /run/acp-node &&
        mount -t tmpfs -o mode=0711 tmpfs /run/containerd &&
        mount --bind "$1/cni/state" /var/lib/cni &&
        mount --bind "$1/container-logs" /var/log/containers &&
        exec sleep infinity' sh "$node_dir" ) > "$state_dir/node-holder.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$state_dir/node-holder.pid"
  wait_for 10 node-holder node_exec mountpoint -q /var/log/containers \
    || die "the node's namespaces did not start; see $state_dir/node-holder.log"
  net_up
}

# After the control plane: containerd, the images, the kubelet and kube-proxy.
node_up() {
  local pause_image=$1
  node_certs
  node_configs "$pause_image"
  forget_containers
  node_start containerd containerd --config "$node_runtime/containerd.toml"
  wait_for 30 containerd node_exec ctr --address "$node_runtime/containerd.sock" version \
    || die "containerd did not start; see $state_dir/containerd.log"
  load_images
  node_start kubelet "$bins/kubelet" --config "$node_runtime/kubelet.yaml" \
    --kubeconfig "$node_runtime/kubelet.kubeconfig" --root-dir "$node_runtime/kubelet" \
    --hostname-override "$node_name" --node-ip "$node_address" --v=0
  node_start kube-proxy "$bins/kube-proxy" --config "$node_runtime/kube-proxy.yaml" --v=0
  wait_for 90 kubelet node_ready || die "the node did not become Ready; see $state_dir/kubelet.log"
}

# Containers of earlier runs stay in containerd's metadata (kept for its
# image store), and the CRI plugin recovers every one of them before it
# serves (the kubelet exits on "server is not initialized yet"): remove them,
# with their snapshots, from a containerd started without the CRI plugin.
forget_containers() {
  local ctr=(ctr --address "$node_runtime/containerd.sock" -n k8s.io) ids pid
  sed 's/^disabled_plugins = \[/disabled_plugins = ["io.containerd.grpc.v1.cri", /' \
    "$node_dir/containerd.toml" > "$node_dir/containerd-forget.toml"
  node_start containerd containerd --config "$node_runtime/containerd-forget.toml"
  wait_for 30 containerd node_exec "${ctr[@]}" version \
    || die "containerd did not start; see $state_dir/containerd.log"
  mapfile -t ids < <(node_exec "${ctr[@]}" containers ls -q 2>/dev/null)
  if (( ${#ids[@]} )); then
    node_exec "${ctr[@]}" containers rm "${ids[@]}" >/dev/null 2>&1 || true
    node_exec "${ctr[@]}" snapshots rm "${ids[@]}" >/dev/null 2>&1 || true
  fi
  pid=$(pid_of containerd)
  kill "$pid" 2>/dev/null || true
  # Our child: it is gone once reaped (a zombie still answers kill -0).
  for _ in $(seq 100); do
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) =~ ^(Z|)$ ]] && break
    sleep 0.1
  done
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) =~ ^(Z|)$ ]] || kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$state_dir/containerd.pid"
}

node_ready() {
  [[ $(kubectl_env get node "$node_name" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

node_down() {
  [[ -f $state_dir/node-holder.pid || -f $node_dir/cgroup-parent ]] || return 0
  local c
  # Every node process, container and shim is in the node's cgroup tree.
  cgroup_teardown
  for c in "${node_components[@]}"; do
    pid_alive "$(pid_of "$c")" && kill -KILL "$(pid_of "$c")" 2>/dev/null
    rm -f "$state_dir/$c.pid"
  done
  net_down
  if [[ -f $node_dir/mountpoints.created ]]; then
    tac "$node_dir/mountpoints.created" | while IFS= read -r mp; do rmdir "$mp" 2>/dev/null || true; done
    rm -f "$node_dir/mountpoints.created"
  fi
  sysctls_restore
}

# Lists what a node of this state directory would have left behind: processes,
# mounts, network namespace, interfaces, cgroups. Empty output means clean.
node_leftovers() {
  local cg mount
  ip link show "$node_host_if" >/dev/null 2>&1 && echo "interface $node_host_if"
  grep -F " $node_dir" /proc/self/mountinfo | awk '{print "mount " $5}'
  cg=$(node_cgroup)
  while IFS= read -r mount; do
    [[ -d $mount$cg ]] && echo "cgroup $mount$cg"
  done < <(cgroup_mounts)
  [[ -f $node_dir/sysctls.orig ]] && echo "kernel settings not restored ($node_dir/sysctls.orig)"
  true
}
