//! A fault-injecting TCP proxy in front of the test S3 server (moto, which accepts any
//! credentials): it refuses one access key id with a real S3 error, counts requests and response
//! bytes, can "go away" after a number of response bytes, and can hold every request for a
//! while, to see how many a client has in flight at once.
//!
//! Only the first request of each connection is inspected: a client sends every request of a
//! connection with the same credentials, so that is enough to refuse a key. Ranged requests are
//! counted on every request, since the proxy parses each request head it forwards.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the traffic.
#[derive(Clone, Debug, Default)]
pub(crate) struct Faults {
    /// Answer every request signed with this access key id with `403` and this S3 error code
    /// (`InvalidAccessKeyId`, `SignatureDoesNotMatch`).
    pub deny: Option<(String, &'static str)>,
    /// After this many response bytes (all connections together), reset every connection
    /// and stop accepting new ones: the endpoint goes away.
    pub die_after_bytes: Option<u64>,
    /// Hold every request this long before forwarding it, counting the requests held at once:
    /// a client sends one request at a time per connection, so that count is its concurrency.
    pub delay: Option<Duration>,
}

#[derive(Default)]
struct Stats {
    response_bytes: AtomicU64,
    requests: AtomicU64,
    ranged_gets: AtomicU64,
    /// `Range` header values seen, in order.
    ranges: Mutex<Vec<String>>,
    dead: AtomicBool,
    held: AtomicU64,
    max_held: AtomicU64,
}

/// A running proxy; stops when dropped.
pub(crate) struct Proxy {
    /// `http://127.0.0.1:PORT`, to use as the endpoint instead of the real server's.
    pub endpoint: String,
    stats: Arc<Stats>,
    kill: watch::Sender<bool>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (`http://HOST:PORT`).
    pub(crate) fn start(upstream: &str, faults: Faults) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the proxy");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let stats = Arc::new(Stats::default());
        let (kill, killed) = watch::channel(false);
        let ctx = Arc::new(Ctx {
            upstream,
            faults,
            stats: stats.clone(),
            kill: kill.clone(),
        });
        rt.spawn(accept_loop(listener, ctx, killed));
        Self {
            endpoint,
            stats,
            kill,
            rt: Some(rt),
        }
    }

    /// Requests seen so far.
    pub(crate) fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::Relaxed)
    }

    /// GET requests with a `Range` header seen so far.
    pub(crate) fn ranged_gets(&self) -> u64 {
        self.stats.ranged_gets.load(Ordering::Relaxed)
    }

    /// The `Range` header values seen so far.
    pub(crate) fn ranges(&self) -> Vec<String> {
        self.stats.ranges.lock().unwrap().clone()
    }

    /// The most requests held at once by [`Faults::delay`].
    pub(crate) fn max_in_flight(&self) -> u64 {
        self.stats.max_held.load(Ordering::SeqCst)
    }

    /// Response bytes forwarded so far.
    pub(crate) fn response_bytes(&self) -> u64 {
        self.stats.response_bytes.load(Ordering::Relaxed)
    }

    /// True once the endpoint went away.
    pub(crate) fn is_dead(&self) -> bool {
        self.stats.dead.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.kill.send(true);
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

struct Ctx {
    upstream: String,
    faults: Faults,
    stats: Arc<Stats>,
    kill: watch::Sender<bool>,
}

impl Ctx {
    fn die(&self) {
        if !self.stats.dead.swap(true, Ordering::SeqCst) {
            let _ = self.kill.send(true);
        }
    }
}

async fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>, mut killed: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = killed.wait_for(|k| *k) => break,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                tokio::spawn(connection(client, ctx.clone(), ctx.kill.subscribe()));
            }
        }
    }
    // Dropping the listener: new connections are refused from now on.
}

async fn connection(mut client: TcpStream, ctx: Arc<Ctx>, mut killed: watch::Receiver<bool>) {
    let killed_now = tokio::select! {
        _ = killed.wait_for(|k| *k) => true,
        _ = serve(&mut client, &ctx) => false,
    };
    if killed_now {
        // Linger 0: closing sends a reset, as a crashed or unplugged server would.
        let _ = client.set_zero_linger();
    } else {
        // A normal end: the client still reads what is buffered, then sees the close.
        let _ = client.shutdown().await;
    }
}

async fn serve(client: &mut TcpStream, ctx: &Ctx) -> std::io::Result<()> {
    // The first request head decides whether this connection is refused.
    let mut head = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let end = loop {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(p) = find(&head, b"\r\n\r\n") {
            break p + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).to_string();
    if let Some((key, code)) = &ctx.faults.deny {
        let auth = header(&text, "authorization").unwrap_or_default();
        if auth.contains(&format!("Credential={key}/")) {
            ctx.stats.requests.fetch_add(1, Ordering::Relaxed);
            let body = s3_error(code, key);
            let head_only = text.starts_with("HEAD ");
            let resp = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nx-amz-request-id: KFGPROXY\r\nConnection: close\r\n\r\n{}",
                body.len(),
                if head_only { "" } else { body.as_str() }
            );
            client.write_all(resp.as_bytes()).await?;
            client.shutdown().await?;
            return Ok(());
        }
    }
    let mut upstream = TcpStream::connect(&ctx.upstream).await?;
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let to_server = async {
        // Every request head on this connection is parsed for the statistics.
        let mut pending = head;
        loop {
            while let Some(p) = find(&pending, b"\r\n\r\n") {
                let req = String::from_utf8_lossy(&pending[..p + 4]).to_string();
                ctx.stats.requests.fetch_add(1, Ordering::Relaxed);
                if let Some(delay) = ctx.faults.delay {
                    let now = ctx.stats.held.fetch_add(1, Ordering::SeqCst) + 1;
                    ctx.stats.max_held.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    ctx.stats.held.fetch_sub(1, Ordering::SeqCst);
                }
                if req.starts_with("GET ") {
                    if let Some(r) = header(&req, "range") {
                        ctx.stats.ranged_gets.fetch_add(1, Ordering::Relaxed);
                        ctx.stats.ranges.lock().unwrap().push(r);
                    }
                }
                if header(&req, "transfer-encoding").is_some() {
                    // A chunked body has no length up front: stop parsing, only forward.
                    uw.write_all(&pending).await?;
                    tokio::io::copy(&mut cr, &mut uw).await?;
                    return Ok(());
                }
                // Forward a request body as it is: only its length matters here.
                let len: usize = header(&req, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                uw.write_all(&pending[..p + 4]).await?;
                pending.drain(..p + 4);
                let mut left = len;
                let now = left.min(pending.len());
                uw.write_all(&pending[..now]).await?;
                pending.drain(..now);
                left -= now;
                while left > 0 {
                    let n = cr.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<_, std::io::Error>(());
                    }
                    let now = left.min(n);
                    uw.write_all(&buf[..now]).await?;
                    left -= now;
                    pending.extend_from_slice(&buf[now..n]);
                }
            }
            let mut more = [0u8; 16 * 1024];
            let n = cr.read(&mut more).await?;
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&more[..n]);
        }
    };
    let to_client = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = ur.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            let mut n = n as u64;
            if let Some(limit) = ctx.faults.die_after_bytes {
                let before = ctx.stats.response_bytes.fetch_add(n, Ordering::SeqCst);
                if before + n >= limit {
                    n = limit.saturating_sub(before);
                    cw.write_all(&buf[..n as usize]).await?;
                    ctx.die();
                    return Ok(());
                }
            } else {
                ctx.stats.response_bytes.fetch_add(n, Ordering::Relaxed);
            }
            cw.write_all(&buf[..n as usize]).await?;
        }
    };
    tokio::select! {
        r = to_server => r,
        r = to_client => r,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A header's value in a request head, by case-insensitive name.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The XML body S3 sends with an error.
fn s3_error(code: &str, key: &str) -> String {
    let message = match code {
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "SignatureDoesNotMatch" => "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        _ => "Access Denied",
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><AWSAccessKeyId>{key}</AWSAccessKeyId><RequestId>KFGPROXY</RequestId><HostId>kfguard-test-proxy</HostId></Error>"
    )
}
