//! Running the demo server and talking to it.

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running demo server; killed when dropped.
pub struct DemoServer {
    child: Child,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

impl DemoServer {
    /// Starts `bin`, waiting up to 5 s for it to publish its port in `dir`.
    pub fn spawn(bin: &Path, dir: &Path) -> Result<DemoServer> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port_file = dir.join(format!("port-{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&port_file);
        let child = Command::new(bin)
            .arg(&port_file)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| Error::Demo(format!("cannot start {}: {e}", bin.display())))?;
        let mut server = DemoServer { child, port: 0 };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                if let Ok(port) = text.trim().parse() {
                    server.port = port;
                    std::thread::sleep(Duration::from_millis(20));
                    return Ok(server);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(Error::Demo(format!("{} did not publish its port within 5 s", bin.display())))
    }

    /// The server's process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `ADD a b` to the server on `port` and returns its one-line reply.
pub fn request(port: u16, a: i64, b: i64) -> Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let io = |e: std::io::Error| Error::Demo(format!("request to {addr}: {e}"));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(io)?;
    s.write_all(format!("ADD {a} {b}\n").as_bytes()).map_err(io)?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).map_err(io)?;
    if reply.is_empty() {
        return Err(Error::Demo(format!("request to {addr}: empty reply")));
    }
    Ok(reply.trim_end().to_string())
}

/// A field `name=<number>` of a reply.
pub fn field(reply: &str, name: &str) -> Option<i64> {
    reply
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}
