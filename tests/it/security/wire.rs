//! HTTP on the wire for the security tests: a tap that relays to the S3 server and keeps every
//! request's line and headers, and a fake S3 that refuses every request the way AWS answers
//! a bad signature (echoing the access key id and the canonical request with the token).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request as the client sent it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
}

impl Request {
    /// The target's query has `key` (`uploads`, `partNumber`, ...).
    pub fn has_query(&self, key: &str) -> bool {
        self.target
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv.split('=').next() == Some(key)))
    }

    /// The object key the target names (path without the leading `/bucket/`), decoded.
    pub fn key(&self, bucket: &str) -> String {
        let path = self.target.split('?').next().unwrap_or_default();
        let rest = path
            .strip_prefix(&format!("/{bucket}/"))
            .unwrap_or(path)
            .to_string();
        percent_encoding::percent_decode_str(&rest)
            .decode_utf8_lossy()
            .into_owned()
    }

    /// A request that creates an object's content: PutObject, CopyObject (a PUT that is not a
    /// multipart part) or CreateMultipartUpload; the requests S3 takes SSE headers on.
    pub fn creates_object(&self) -> bool {
        (self.method == "PUT" && !self.has_query("partNumber"))
            || (self.method == "POST" && self.has_query("uploads"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A relay in front of the S3 server that records every request.
pub struct Tap {
    pub endpoint: String,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Tap {
    /// Listens on a free local port and relays each connection to `upstream`
    /// (`http://host:port`).
    pub fn start(upstream: &str) -> Tap {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
        let recorder = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, seen) = (upstream.clone(), recorder.clone());
                std::thread::spawn(move || relay(client, &upstream, &seen));
            }
        });
        Tap { endpoint, seen }
    }

    /// Every request so far, in arrival order per connection.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

fn relay(client: TcpStream, upstream: &str, seen: &Mutex<Vec<Request>>) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let mut from_client = BufReader::new(client.try_clone().unwrap());
    let mut to_server = server.try_clone().unwrap();
    let (mut from_server, mut to_client) = (server, client);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    while let Some(head) = read_head(&mut from_client) {
        let req = parse_head(&head);
        seen.lock().unwrap().push(req.clone());
        if to_server.write_all(&head).is_err()
            || forward_body(&req, &mut from_client, &mut to_server).is_err()
        {
            break;
        }
    }
    let _ = to_server.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// The request line and headers, through the empty line; `None` at end of stream.
fn read_head(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            return Some(head);
        }
    }
}

fn parse_head(head: &[u8]) -> Request {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Request {
        method,
        target,
        headers,
    }
}

/// Copies the request body (Content-Length or chunked) from `r` to `w`.
fn forward_body(req: &Request, r: &mut impl BufRead, w: &mut impl Write) -> std::io::Result<()> {
    if let Some(n) = req.header("content-length") {
        let n: u64 = n.parse().unwrap_or(0);
        let copied = std::io::copy(&mut r.take(n), w)?;
        if copied != n {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        return Ok(());
    }
    if !req
        .header("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        return Ok(());
    }
    loop {
        let mut size_line = Vec::new();
        r.read_until(b'\n', &mut size_line)?;
        w.write_all(&size_line)?;
        let text = String::from_utf8_lossy(&size_line);
        let size = u64::from_str_radix(text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
        if size == 0 {
            // Trailers, through the empty line.
            loop {
                let mut line = Vec::new();
                r.read_until(b'\n', &mut line)?;
                w.write_all(&line)?;
                if line == b"\r\n" || line.is_empty() {
                    return Ok(());
                }
            }
        }
        std::io::copy(&mut r.take(size + 2), w)?;
    }
}

/// A fake S3 endpoint answering every request `403 SignatureDoesNotMatch` with the body AWS
/// sends: the access key id of the request, and the canonical request, which holds the
/// `x-amz-security-token` header's value.
pub fn signature_mismatch_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || refuse(conn));
        }
    });
    endpoint
}

/// Answers one request, then closes the connection.
fn refuse(conn: TcpStream) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    if let Some(head) = read_head(&mut r) {
        let req = parse_head(&head);
        if forward_body(&req, &mut r, &mut std::io::sink()).is_err() {
            return;
        }
        let auth = req.header("authorization").unwrap_or_default();
        let key_id = auth
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split('/').next())
            .unwrap_or_default();
        let signature = auth.split("Signature=").nth(1).unwrap_or_default();
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code>\
             <Message>The request signature we calculated does not match the signature you \
             provided. Check your key and signing method.</Message>\
             <AWSAccessKeyId>{key_id}</AWSAccessKeyId>\
             <StringToSign>AWS4-HMAC-SHA256\n{date}\n20260101/us-east-1/s3/aws4_request\nabc</StringToSign>\
             <SignatureProvided>{signature}</SignatureProvided>\
             <CanonicalRequest>{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{sha}\n\
             x-amz-date:{date}\nx-amz-security-token:{token}\n\n\
             host;x-amz-content-sha256;x-amz-date;x-amz-security-token\n{sha}</CanonicalRequest>\
             <RequestId>FAKE0REQUEST0ID</RequestId></Error>",
            method = req.method,
            host = req.header("host").unwrap_or_default(),
            sha = req.header("x-amz-content-sha256").unwrap_or_default(),
            date = req.header("x-amz-date").unwrap_or_default(),
            token = req.header("x-amz-security-token").unwrap_or_default(),
        );
        // A HEAD response has no body (S3 then sends the error code in headers only).
        let body = if req.method == "HEAD" {
            String::new()
        } else {
            body
        };
        let response = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = w.write_all(response.as_bytes());
        let _ = w.shutdown(Shutdown::Both);
    }
}
