use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Every response we send has its whole body in memory.
pub type HttpResponse = Response<Full<Bytes>>;

/// Something that answers HTTP requests: the public OCSP service, the admin API.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request from `peer`.
    fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> crate::source::BoxFuture<'static, HttpResponse>;
}

/// Writes at least this large count as a connection being busy; smaller ones are protocol
/// control frames a client can provoke at will.
const BUSY_WRITE: usize = 64;

/// How long a client may take to send its request headers before the connection is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The bounds of one listener: how many connections it holds open at once, and how long a
/// connection may sit idle.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Connections open at once. Beyond it, new connections wait in the kernel's backlog
    /// until one closes, so a flood of idle sockets cannot exhaust the process's file limit
    /// (which the admin listener, the database and the purge clients share).
    pub max_connections: usize,
    /// A connection with no request in flight and no bytes written for this long is closed,
    /// whatever its protocol or state: a silent socket, a partial HTTP/2 preface, a full h2c
    /// preface and then nothing, a keep-alive connection between requests.
    pub idle_timeout: Duration,
}

impl ListenerLimits {
    /// Public listener defaults: RFC 5019 clients send one request per connection.
    pub fn public_default(open_files: Option<u64>) -> ListenerLimits {
        ListenerLimits { max_connections: connection_budget(open_files, 4), idle_timeout: Duration::from_secs(15) }
    }

    /// Admin listener defaults: few staff, long operations.
    pub fn admin_default() -> ListenerLimits {
        ListenerLimits { max_connections: 64, idle_timeout: Duration::from_secs(60) }
    }
}

/// Connections a listener may hold: 10,000, or less so that with `open_files` descriptors the
/// connections take at most `(n-1)/n` of them minus a reserve of 192 for the database, the admin
/// listener and outgoing purges.
pub fn connection_budget(open_files: Option<u64>, n: u64) -> usize {
    const MOST: u64 = 10_000;
    match open_files {
        Some(limit) => (limit.saturating_sub(192) * (n - 1) / n).clamp(16, MOST) as usize,
        None => MOST as usize,
    }
}

/// The soft limit on open files of this process (`ulimit -n`), where the system says it.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// When a connection was last busy, shared by its I/O wrapper, its requests and its watchdog.
#[derive(Debug)]
struct Activity {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last request start, response, or bytes written.
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity { epoch: Instant::now(), last_ms: AtomicU64::new(0), in_flight: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        self.last_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        Some(Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed))))
    }
}

/// A request in flight: the connection is not idle while one exists.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, noting progress in writing: a slow reader of a large answer is busy, not idle.
/// Bytes read do not count, nor small writes (HTTP/2 PING and SETTINGS acknowledgements are 9
/// to 17 bytes): a client that only sends pings or a preface is idle.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n >= BUSY_WRITE) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n >= BUSY_WRITE) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Counters of one listener, for `/metrics`.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed for idleness.
    pub closed_idle: AtomicU64,
    /// Times the listener was at its connection bound and waited for one to close.
    pub at_capacity: AtomicU64,
}

impl ListenerStats {
    /// Prometheus lines for every listener, each family once, labelled by listener name.
    pub fn render_all(listeners: &[(&str, &ListenerStats)]) -> String {
        type Field = fn(&ListenerStats) -> &AtomicU64;
        let families: [(&str, &str, &str, Field); 4] = [
            ("ocspd_connections_open", "Connections open now.", "gauge", |l| &l.open),
            ("ocspd_connections_accepted_total", "Connections accepted.", "counter", |l| &l.accepted),
            ("ocspd_connections_closed_idle_total", "Connections closed for idleness.", "counter", |l| &l.closed_idle),
            (
                "ocspd_connections_at_capacity_total",
                "Times a listener held its most connections and waited for one to close.",
                "counter",
                |l| &l.at_capacity,
            ),
        ];
        let mut s = String::new();
        for (name, help, kind, field) in families {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (listener, stats) in listeners {
                s.push_str(&format!("{name}{{listener=\"{listener}\"}} {}\n", field(stats).load(Ordering::Relaxed)));
            }
        }
        s
    }
}

/// Accepts connections on `listener` and serves each with `handler` (HTTP/1.1 and HTTP/2),
/// within `limits`, until `shutdown` turns true.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limits: ListenerLimits,
    stats: Arc<ListenerStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // Take a slot before accepting: at the bound, connections wait in the backlog instead
        // of costing a file descriptor each.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                stats.at_capacity.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                    _ = shutdown.changed() => return,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let stats = stats.clone();
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _permit = permit;
            let activity = Arc::new(Activity::new());
            activity.touch();
            let watched = activity.clone();
            let service = hyper::service::service_fn(move |req| {
                let busy = InFlight::start(&watched);
                let fut = handler.clone().handle(req, peer);
                async move {
                    let response = fut.await;
                    drop(busy);
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
            let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            // The watchdog covers what hyper's timers do not: version detection, a partial or
            // silent HTTP/2 preface, idle keep-alive connections of either protocol.
            let mut tick = tokio::time::interval((limits.idle_timeout / 4).max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    result = &mut conn => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = tick.tick() => {
                        if activity.idle_for().is_some_and(|idle| idle >= limits.idle_timeout) {
                            tracing::debug!(%peer, "idle connection closed");
                            stats.closed_idle.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}
