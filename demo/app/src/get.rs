//! `demo-app get URL [--count N]`: the smallest HTTP client that will do.
//!
//! Images built `FROM scratch` hold one static binary and nothing else: no
//! shell, no `curl`. To look at a Service from inside a pod (as the book's
//! `kubectl exec ... -- curl` moments do) or to run a traffic probe as a pod,
//! the workload brings its own client.
//!
//! It is hand-written on purpose: a plain HTTP/1.1 GET over a `TcpStream`
//! is about a hundred lines, while an HTTP client crate would roughly double
//! the binary for features (TLS, redirects, pools) nothing here uses. HTTP
//! is not the lesson; reading this file once is enough to see all of it.

use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request that takes longer than this counts as failed, so a probe never
/// hangs on a pod that accepted the connection and then froze.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `count` GET requests to `url`, one after the other, and writes one
/// line per request to `out`: the body when the answer is 2xx, else
/// `error: ...`. Errors go to the same stream so that line N is always
/// request N, which is what a probe that counts versions needs. Fails (exit
/// 1) if any request failed.
pub async fn run(url: &str, count: u32, out: &mut impl Write) -> anyhow::Result<()> {
    let target = Target::parse(url)?;
    let mut failed = 0;
    for _ in 0..count {
        let line = match tokio::time::timeout(TIMEOUT, get(&target)).await {
            Ok(Ok((status, body))) if (200..300).contains(&status) => one_line(&body),
            Ok(Ok((status, body))) => {
                failed += 1;
                format!("error: HTTP {status}: {}", one_line(&body))
            }
            Ok(Err(e)) => {
                failed += 1;
                format!("error: {e}")
            }
            Err(_) => {
                failed += 1;
                format!("error: no answer within {} s", TIMEOUT.as_secs())
            }
        };
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if failed > 0 {
        anyhow::bail!("{failed} of {count} requests to {url} failed");
    }
    Ok(())
}

fn one_line(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .trim_end()
        .replace(['\r', '\n'], " ")
}

/// Where to send the request: `http://HOST[:PORT][/PATH]`.
pub(crate) struct Target {
    /// `host:port`, for connecting.
    address: String,
    /// The `Host` header: what the server was asked for.
    host: String,
    path: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> anyhow::Result<Target> {
        let Some(rest) = url.strip_prefix("http://") else {
            anyhow::bail!("{url}: only http:// URLs are supported");
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() {
            anyhow::bail!("{url}: no host");
        }
        // No port, or a bare IPv6 address in brackets: the default port 80.
        let address = if host.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']')) {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        Ok(Target {
            address,
            host: host.to_string(),
            path: path.to_string(),
        })
    }
}

/// One request on a fresh connection (`Connection: close`: the server ends
/// the answer by closing, which keeps the reading simple).
pub(crate) async fn get(target: &Target) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(&target.address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", target.address))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: demo-app-get\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.host
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    parse_response(&answer)
}

/// Status line, headers, blank line, body: the body's length comes from
/// `Content-Length`, or it is sent in chunks (`Transfer-Encoding: chunked`),
/// or it runs to the end of the connection.
fn parse_response(answer: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("incomplete HTTP answer ({} bytes)", answer.len()))?;
    let head = String::from_utf8_lossy(&answer[..split]);
    let body = &answer[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP answer: {status_line:?}"))?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(body)?
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.get(..len)
            .ok_or_else(|| anyhow::anyhow!("answer cut short"))?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

/// Chunked encoding: `SIZE-IN-HEX\r\nDATA\r\n` repeated, ending with size 0.
fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow::anyhow!("bad chunked body"))?;
        let size_field = String::from_utf8_lossy(&data[..eol]);
        let size_hex = size_field.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| anyhow::anyhow!("bad chunk size {size_hex:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = data
            .get(..size)
            .ok_or_else(|| anyhow::anyhow!("answer cut short"))?;
        body.extend_from_slice(chunk);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = Target::parse("http://127.0.0.1:8080/readyz").unwrap();
        assert_eq!(
            (t.address.as_str(), t.path.as_str()),
            ("127.0.0.1:8080", "/readyz")
        );
        let t = Target::parse("http://web").unwrap();
        assert_eq!(
            (t.address.as_str(), t.host.as_str(), t.path.as_str()),
            ("web:80", "web", "/")
        );
        let t = Target::parse("http://[::1]/").unwrap();
        assert_eq!(t.address, "[::1]:80");
        assert!(Target::parse("https://x/").is_err());
    }

    #[test]
    fn parses_lengths_and_chunks() {
        let a = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(parse_response(a).unwrap(), (200, b"hello".to_vec()));
        let a = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ndrai\r\n3\r\nnin\r\n1\r\ng\r\n0\r\n\r\n";
        assert_eq!(parse_response(a).unwrap(), (503, b"draining".to_vec()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
