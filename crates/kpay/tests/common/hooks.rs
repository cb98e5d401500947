//! A webhook receiver for tests of the real binary: plain threads, keep-alive, no framework.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// (webhook-id, webhook-timestamp, webhook-signature, body).
pub type Delivery = (String, String, String, String);

/// A receiver on a free port: records each delivery's `webhook-id`; the first `hold` requests
/// are never answered (the connection is held open), the rest get 200.
#[derive(Clone)]
pub struct Hooks {
    /// Every delivery: (webhook-id, webhook-timestamp, webhook-signature, body).
    pub got: Arc<Mutex<Vec<Delivery>>>,
    hold: Arc<AtomicUsize>,
}

impl Hooks {
    pub fn start(hold: usize) -> (Hooks, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let hooks = Hooks {
            got: Arc::default(),
            hold: Arc::new(AtomicUsize::new(hold)),
        };
        let h = hooks.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let h = h.clone();
                std::thread::spawn(move || h.serve(stream));
            }
        });
        (hooks, url)
    }

    /// Requests on one keep-alive connection.
    fn serve(&self, stream: std::net::TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        loop {
            let (mut id, mut ts, mut sig, mut length) =
                (String::new(), String::new(), String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    match name.to_ascii_lowercase().as_str() {
                        "webhook-id" => id = value.trim().to_owned(),
                        "webhook-timestamp" => ts = value.trim().to_owned(),
                        "webhook-signature" => sig = value.trim().to_owned(),
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            self.got.lock().unwrap().push((
                id,
                ts,
                sig,
                String::from_utf8_lossy(&body).into_owned(),
            ));
            let held = self
                .hold
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if held {
                // Never answered: the sender is killed meanwhile.
                std::thread::sleep(Duration::from_secs(120));
                return;
            }
            if out
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .is_err()
            {
                return;
            }
        }
    }

    pub fn count(&self, id: &str) -> usize {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.0 == id)
            .count()
    }
}
