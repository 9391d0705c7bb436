//! A real OpenSSH server on loopback, for git over ssh.
//!
//! It runs `/usr/sbin/sshd` with its own host key and an `authorized_keys`
//! holding a client key made for the test; git runs as the current user, so
//! repositories are addressed by absolute path. The known_hosts entry for the
//! server is written too, so host-key verification is exercised for real.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::wait::DEFAULT_TIMEOUT;

/// A running sshd. Killed when dropped.
pub struct SshServer {
    port: u16,
    dir: PathBuf,
    child: Child,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "acp-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs (install openssh-client: scripts/setup)");
    assert!(out.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&out.stderr));
}

impl SshServer {
    /// Starts sshd with state under `dir`.
    pub fn start(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("sshd dir");
        // sshd insists on its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (tests run as root)");
        keygen(&dir.join("host_key"));
        keygen(&dir.join("client_key"));
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).expect("authorized_keys");
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\nAuthorizedKeysFile {dir}/authorized_keys\n\
             PidFile {dir}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
             LogLevel ERROR\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).expect("sshd_config");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd starts (install openssh-server: scripts/setup)");
        let host_key = std::fs::read_to_string(dir.join("host_key.pub")).expect("host key");
        let mut fields = host_key.split_whitespace();
        let entry = format!(
            "[127.0.0.1]:{port} {} {}\n",
            fields.next().expect("key type"),
            fields.next().expect("key blob")
        );
        std::fs::write(dir.join("known_hosts"), entry).expect("known_hosts");
        let deadline = std::time::Instant::now() + DEFAULT_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "sshd did not start listening");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { port, dir: dir.to_owned(), child }
    }

    /// `ssh://` URL of a repository at an absolute path.
    pub fn url(&self, repo: &Path) -> String {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        format!("ssh://{user}@127.0.0.1:{}{}", self.port, repo.display())
    }

    /// The client's private key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client_key")
    }

    /// A known_hosts file listing this server.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
