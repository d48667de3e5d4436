//! One keep-alive HTTP/1.1 connection, driven by hyper's low-level client.
//!
//! The pooled clients (reqwest, hyper-util's `Client`) add a pool lookup, URL parsing and
//! more allocation per request; on a 2-core machine where the generator shares the CPU with the
//! server, every cycle the generator spends is one the server does not get. One connection per
//! task also makes "64 connections" exact.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Error;

/// The header every POST of the API requires.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A request body: empty for GETs and for `POST /v1/members`.
pub type Body = http_body_util::Either<Full<Bytes>, Empty<Bytes>>;

/// A keep-alive connection to the service.
pub struct Conn {
    sender: SendRequest<Body>,
    host: HeaderValue,
    addr: SocketAddr,
}

impl Conn {
    /// Connects and completes the HTTP/1.1 handshake; the connection task runs on the current
    /// runtime until the connection closes.
    pub async fn open(addr: SocketAddr) -> Result<Conn, Error> {
        let stream = TcpStream::connect(addr).await?;
        // Requests are small single writes: Nagle would only add delay.
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the server closes it; either way
            // the next send reports it.
            let _ = connection.await;
        });
        Ok(Conn {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
            addr,
        })
    }

    /// The address this connection goes to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one request and reads the whole response body (so the connection can be reused).
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        auth: &HeaderValue,
        idempotency_key: Option<&str>,
        json: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), Error> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, auth.clone());
        if let Some(key) = idempotency_key {
            builder = builder.header(IDEMPOTENCY_KEY, key);
        }
        let request = match json {
            Some(body) => builder
                .header(CONTENT_TYPE, "application/json")
                .body(Body::Left(Full::new(body)))?,
            None => builder.body(Body::Right(Empty::new()))?,
        };
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// `Bearer <token>` as a header value, built once and cloned per request (a cheap copy).
pub fn bearer(token: &str) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    Ok(value)
}
