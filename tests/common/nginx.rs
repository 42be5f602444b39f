//! A real nginx (Debian `nginx`) as the platform: its own folder and a free port, with the
//! `server` block a test gives. Stopped when dropped.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::login::free_port;

pub struct Nginx {
    pub port: u16,
    child: Child,
}

impl Nginx {
    /// Starts nginx in `dir/nginx` with `server_body` inside `server { listen 127.0.0.1:PORT ...; }`
    /// (`listen_extra` is appended to the listen directive, e.g. `ssl`).
    pub async fn start(dir: &Path, listen_extra: &str, server_body: &str) -> Nginx {
        let root = dir.join("nginx");
        std::fs::create_dir_all(root.join("logs")).unwrap();
        let port = free_port();
        let conf = format!(
            "worker_processes 1;\ndaemon off;\nerror_log {root}/logs/error.log warn;\npid {root}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {root}/body;\n  proxy_temp_path {root}/proxy;\n\
             fastcgi_temp_path {root}/fastcgi;\n  uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n\
             server {{\n    listen 127.0.0.1:{port} {listen_extra};\n{server_body}\n  }}\n}}\n",
            root = root.display()
        );
        std::fs::write(root.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .args(["-p", &root.display().to_string(), "-c", "nginx.conf"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx is a test peer (Debian package nginx; tests/run.sh installs it)");
        let mut nginx = Nginx { port, child };
        for _ in 0..100 {
            // A port taken meanwhile by another process makes nginx exit: not ours to talk to.
            assert!(
                nginx.child.try_wait().unwrap().is_none(),
                "nginx exited; see {}/logs/error.log",
                root.display()
            );
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return nginx;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx did not listen on {port}; see {}/logs/error.log", root.display());
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
