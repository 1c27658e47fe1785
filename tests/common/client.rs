//! A small blocking client for memcached's text protocol, for tests that need to send raw
//! lines and read raw replies.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a single read may block before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A text-protocol connection to `127.0.0.1:port`.
pub struct TextClient {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl TextClient {
    /// Connects to `127.0.0.1:port` with generous read/write timeouts.
    pub fn connect(port: u16) -> Self {
        Self::connect_addr(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Connects to `addr` (any address, e.g. a node in a network namespace) with the same
    /// timeouts as [`TextClient::connect`].
    pub fn connect_addr(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, READ_TIMEOUT)
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let reader = BufReader::new(stream.try_clone().expect("cloning TcpStream"));
        TextClient {
            writer: stream,
            reader,
        }
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Reads one line including its `\n` terminator; an empty vector means EOF.
    pub fn read_line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        Ok(line)
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Sends `line` + CRLF and returns the first reply line without its CRLF.
    pub fn request_line(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("sending {line:?}: {e}"));
        let reply = self
            .read_line()
            .unwrap_or_else(|e| panic!("reading reply to {line:?}: {e}"));
        assert!(!reply.is_empty(), "connection closed in reply to {line:?}");
        String::from_utf8_lossy(&reply)
            .trim_end_matches(['\r', '\n'])
            .to_string()
    }

    /// Stores `value` under `key` with `set` and asserts the reply is `STORED`.
    pub fn set(&mut self, key: &str, flags: u32, value: &[u8]) {
        let mut req = format!("set {key} {flags} 0 {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
        self.send(&req).expect("sending set");
        let reply = self.read_line().expect("reading set reply");
        assert_eq!(reply, b"STORED\r\n", "set {key}: unexpected reply");
    }

    /// Runs `get key` and returns the value, or None on a miss.
    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.send(format!("get {key}\r\n").as_bytes())
            .expect("sending get");
        let line = self.read_line().expect("reading get reply");
        if line == b"END\r\n" {
            return None;
        }
        let text = String::from_utf8_lossy(&line).to_string();
        let parts: Vec<&str> = text.split_whitespace().collect();
        assert!(
            parts.len() >= 4 && parts[0] == "VALUE",
            "bad get reply {text:?}"
        );
        let len: usize = parts[3].parse().expect("value length");
        let mut data = self.read_exact(len + 2).expect("reading value");
        data.truncate(len);
        assert_eq!(self.read_line().expect("reading END"), b"END\r\n");
        Some(data)
    }

    /// Runs `stats` (or `stats ARG`) and returns the name -> value map.
    pub fn stats(&mut self, arg: Option<&str>) -> HashMap<String, String> {
        let cmd = match arg {
            Some(a) => format!("stats {a}\r\n"),
            None => "stats\r\n".to_string(),
        };
        self.send(cmd.as_bytes()).expect("sending stats");
        let mut map = HashMap::new();
        loop {
            let line = self.read_line().expect("reading stats");
            assert!(!line.is_empty(), "connection closed during stats");
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text == "END" {
                return map;
            }
            let mut parts = text.splitn(3, ' ');
            assert_eq!(parts.next(), Some("STAT"), "bad stats line {text:?}");
            let name = parts.next().unwrap_or_default().to_string();
            map.insert(name, parts.next().unwrap_or_default().to_string());
        }
    }
}
