//! SPDY/3.1 framing: the multiplexing protocol under `kubectl port-forward`.
//!
//! SPDY was Google's experimental successor to HTTP/1.1; HTTP/2 replaced it
//! on the web, but Kubernetes kept it for its streaming calls, because it
//! does one thing HTTP/1.1 cannot: carry many independent, bidirectional
//! byte streams over one connection. `kubectl port-forward` opens two SPDY
//! streams for every local connection (one for the bytes, one for errors);
//! hundreds of browser requests through one forward are hundreds of streams
//! on one upgraded HTTP connection. (Upstream's code for this is
//! `k8s.io/apimachinery/pkg/util/httpstream/spdy`, on top of
//! `github.com/moby/spdystream`; the framing is the SPDY/3 draft's.)
//!
//! Since Kubernetes 1.31 the same SPDY bytes usually travel *inside*
//! WebSocket binary messages (KEP-4006: proxies understand WebSockets, few
//! understand SPDY); the framing here does not care what carries it.
//!
//! A frame is an 8-byte header and a payload:
//!
//! ```text
//! control frame:  |1| version (15) | type (16) | flags (8) | length (24) | payload
//! data frame:     |0| stream id (31)           | flags (8) | length (24) | data
//! ```
//!
//! The control frames a port-forward session sees: `SYN_STREAM` (open a
//! stream, with headers), `SYN_REPLY` (accept it), `RST_STREAM` (abort one),
//! `SETTINGS`, `PING` (answered with the same id, kubectl's keep-alive),
//! `GOAWAY` (no new streams), `HEADERS` and `WINDOW_UPDATE`. A `FLAG_FIN`
//! on a data or SYN frame half-closes the stream: the sender will send no
//! more, as a TCP FIN does.
//!
//! Header blocks are zlib-compressed with **one compression context per
//! direction for the whole connection**, primed with a fixed dictionary of
//! common header words ([`dictionary`]). Two consequences shape the code:
//! every header block must be decoded, even of a frame we ignore, or the
//! next one no longer inflates; and frames that carry headers must be
//! *encoded* in the order they are *sent*, so one writer owns the encoder.

use std::sync::OnceLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The only version this module speaks (the `3` of SPDY/3.1; 3.1 added
/// connection-level flow control, which kubectl's spdystream does not use).
pub const VERSION: u16 = 3;

/// `FLAG_FIN`: the sender's last frame on this stream.
pub const FLAG_FIN: u8 = 0x01;

/// `RST_STREAM` and `GOAWAY` status codes (the ones used here).
pub mod status {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const CANCEL: u32 = 5;
}

/// A header block: lower-case names and their values, in order.
pub type Headers = Vec<(String, String)>;

/// One SPDY/3 frame, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        /// 0 (highest) to 7.
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// `(flags, id, value)` triples.
    Settings {
        flags: u8,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
}

// Control frame types.
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// Why a byte stream is not SPDY/3.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpdyError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("malformed SPDY {0} frame")]
    Malformed(&'static str),
    #[error("SPDY header block: {0}")]
    HeaderBlock(String),
}

// ANCHOR: dictionary
/// The SPDY/3 header dictionary (1423 bytes, Adler-32 `0xe3c6a7c2`): zlib
/// starts each direction's context "having seen" these bytes, so even the
/// first header block compresses well. The draft defines it as a list of
/// words, each with a 4-byte big-endian length, followed by raw text.
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413",
            "414415416417502504505203 Non-Authoritative Information204 No Content",
            "301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 ",
            "Not Found500 Internal Server Error501 Not Implemented503 Service ",
            "UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
            "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
            "charset=iso-8859-1,utf-,*,enq=0.",
        );
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}
// ANCHOR_END: dictionary

/// Reads frames from bytes as they arrive: [`Decoder::push`] what the
/// transport delivered, then take [`Decoder::next_frame`] until `None`.
/// Owns the inflate context of the peer's header blocks.
pub struct Decoder {
    buf: BytesMut,
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            buf: BytesMut::new(),
            // `true`: the stream has a zlib header (which names the
            // dictionary by its Adler-32), not raw deflate.
            inflate: Decompress::new(true),
        }
    }
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, or `None` until more bytes arrive. Control
    /// frames of unknown types are skipped: the draft says implementations
    /// "must ignore" them (NOOP, CREDENTIAL), and none carries a header
    /// block.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SpdyError> {
        loop {
            match self.frame()? {
                Next::Frame(frame) => return Ok(Some(frame)),
                Next::NeedMore => return Ok(None),
                Next::Skipped => {}
            }
        }
    }

    fn frame(&mut self) -> Result<Next, SpdyError> {
        if self.buf.len() < 8 {
            return Ok(Next::NeedMore);
        }
        // 24 bits: a frame is at most 16 MiB.
        let len = u32::from_be_bytes([0, self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return Ok(Next::NeedMore);
        }
        let mut frame = self.buf.split_to(8 + len).freeze();
        let first = frame.get_u32();
        let flags = frame.get_u8();
        frame.advance(3);
        let mut p = frame; // the payload
        if first & 0x8000_0000 == 0 {
            return Ok(Next::Frame(Frame::Data {
                stream_id: first & 0x7fff_ffff,
                flags,
                data: p,
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = (first & 0xffff) as u16;
        let need = |p: &Bytes, n: usize, what| {
            if p.len() < n {
                Err(SpdyError::Malformed(what))
            } else {
                Ok(())
            }
        };
        let frame = match kind {
            SYN_STREAM => {
                need(&p, 10, "SYN_STREAM")?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                let associated_to = p.get_u32() & 0x7fff_ffff;
                let priority = p.get_u8() >> 5;
                let _slot = p.get_u8();
                let headers = self.headers(&p)?;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    flags,
                    headers,
                }
            }
            SYN_REPLY | HEADERS => {
                need(&p, 4, "SYN_REPLY")?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                let headers = self.headers(&p)?;
                if kind == SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            RST_STREAM => {
                need(&p, 8, "RST_STREAM")?;
                Frame::RstStream {
                    stream_id: p.get_u32() & 0x7fff_ffff,
                    status: p.get_u32(),
                }
            }
            SETTINGS => {
                need(&p, 4, "SETTINGS")?;
                let n = p.get_u32() as usize;
                need(&p, n.saturating_mul(8), "SETTINGS")?;
                let entries = (0..n)
                    .map(|_| {
                        let id = p.get_u32();
                        ((id >> 24) as u8, id & 0x00ff_ffff, p.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            PING => {
                need(&p, 4, "PING")?;
                Frame::Ping { id: p.get_u32() }
            }
            GOAWAY => {
                need(&p, 4, "GOAWAY")?;
                let last_good_stream_id = p.get_u32() & 0x7fff_ffff;
                // SPDY/2 had no status; SPDY/3 peers send one.
                let status = if p.len() >= 4 { p.get_u32() } else { 0 };
                Frame::GoAway {
                    last_good_stream_id,
                    status,
                }
            }
            WINDOW_UPDATE => {
                need(&p, 8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream_id: p.get_u32() & 0x7fff_ffff,
                    delta: p.get_u32() & 0x7fff_ffff,
                }
            }
            _ => return Ok(Next::Skipped),
        };
        Ok(Next::Frame(frame))
    }

    /// Inflate one header block with the connection's context and parse it.
    fn headers(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let raw = inflate(&mut self.inflate, block)?;
        parse_header_block(&raw)
    }
}

/// What [`Decoder::frame`] found at the front of the buffer.
enum Next {
    Frame(Frame),
    NeedMore,
    Skipped,
}

/// Turns frames into bytes. Owns the deflate context of our header blocks,
/// so one writer must encode every frame, in the order they are sent.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(dictionary())
            .expect("a fresh deflate stream takes a dictionary");
        Encoder { deflate }
    }
}

impl Encoder {
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) {
        let control = |out: &mut BytesMut, kind: u16, flags: u8, payload: &[u8]| {
            out.put_u16(0x8000 | VERSION);
            out.put_u16(kind);
            out.put_u32((flags as u32) << 24 | payload.len() as u32);
            out.put_slice(payload);
        };
        let mut p = BytesMut::new();
        match frame {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32((*flags as u32) << 24 | data.len() as u32);
                out.put_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                p.put_u32(*stream_id);
                p.put_u32(*associated_to);
                p.put_u8(priority << 5);
                p.put_u8(0);
                p.put_slice(&self.header_block(headers));
                control(out, SYN_STREAM, *flags, &p);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
            | Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                p.put_u32(*stream_id);
                p.put_slice(&self.header_block(headers));
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    SYN_REPLY
                } else {
                    HEADERS
                };
                control(out, kind, *flags, &p);
            }
            Frame::RstStream { stream_id, status } => {
                p.put_u32(*stream_id);
                p.put_u32(*status);
                control(out, RST_STREAM, 0, &p);
            }
            Frame::Settings { flags, entries } => {
                p.put_u32(entries.len() as u32);
                for (f, id, value) in entries {
                    p.put_u32((*f as u32) << 24 | id & 0x00ff_ffff);
                    p.put_u32(*value);
                }
                control(out, SETTINGS, *flags, &p);
            }
            Frame::Ping { id } => control(out, PING, 0, &id.to_be_bytes()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                p.put_u32(*last_good_stream_id);
                p.put_u32(*status);
                control(out, GOAWAY, 0, &p);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                p.put_u32(*stream_id);
                p.put_u32(*delta);
                control(out, WINDOW_UPDATE, 0, &p);
            }
        }
    }

    /// Serialize and compress a header block. A *sync* flush ends each
    /// block on a byte boundary, so the peer can inflate it completely
    /// without the rest of the connection's stream.
    fn header_block(&mut self, headers: &Headers) -> Vec<u8> {
        let mut raw = BytesMut::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.to_ascii_lowercase().as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut pos = 0;
        loop {
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&raw[pos..], &mut out, FlushCompress::Sync)
                .expect("deflate into memory cannot fail");
            pos += (self.deflate.total_in() - before) as usize;
            // Done when all input is in and deflate did not fill the
            // buffer (a full buffer may hide more pending output).
            if pos == raw.len() && out.len() < out.capacity() {
                return out;
            }
            out.reserve(256);
        }
    }
}

/// Inflate what the peer's context produced for one header block. The
/// first block's zlib header asks for the dictionary (FDICT): zlib stops
/// with "need dictionary", we hand it over and go on.
fn inflate(z: &mut Decompress, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
    let mut out = Vec::with_capacity(input.len() * 4 + 64);
    let mut pos = 0;
    loop {
        let before = z.total_in();
        let res = z.decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync);
        pos += (z.total_in() - before) as usize;
        match res {
            // A peer never ends its compression stream; bytes after an end
            // would never be read, and waiting for them would never end.
            Ok(flate2::Status::StreamEnd) if pos < input.len() => {
                return Err(SpdyError::HeaderBlock(
                    "data after the end of the compressed stream".into(),
                ));
            }
            Ok(_) => {}
            Err(e) if e.needs_dictionary().is_some() => {
                z.set_dictionary(dictionary())
                    .map_err(|e| SpdyError::HeaderBlock(e.to_string()))?;
                continue;
            }
            Err(e) => return Err(SpdyError::HeaderBlock(e.to_string())),
        }
        if pos == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(256));
    }
}

/// `count (4) { name-len (4) name value-len (4) value }*`. Values with
/// several entries are separated by NUL; we keep them as one string.
fn parse_header_block(raw: &[u8]) -> Result<Headers, SpdyError> {
    let bad = || SpdyError::HeaderBlock("truncated".into());
    let mut p = raw;
    let read = |p: &mut &[u8]| -> Result<String, SpdyError> {
        if p.len() < 4 {
            return Err(bad());
        }
        let n = p.get_u32() as usize;
        if p.len() < n {
            return Err(bad());
        }
        let s = String::from_utf8_lossy(&p[..n]).into_owned();
        p.advance(n);
        Ok(s)
    };
    if p.len() < 4 {
        return Err(bad());
    }
    let count = p.get_u32();
    let mut headers = Vec::new();
    for _ in 0..count {
        let name = read(&mut p)?;
        let value = read(&mut p)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// The value of a header, by (lower-case) name.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frames: &[Frame]) -> Vec<Frame> {
        let mut enc = Encoder::default();
        let mut bytes = BytesMut::new();
        for f in frames {
            enc.encode(f, &mut bytes);
        }
        // Deliver the bytes in awkward pieces: frames span reads.
        let mut dec = Decoder::default();
        let mut got = Vec::new();
        for chunk in bytes.chunks(7) {
            dec.push(chunk);
            while let Some(f) = dec.next_frame().unwrap() {
                got.push(f);
            }
        }
        got
    }

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_dictionary_is_the_drafts() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // What every SPDY/3 peer puts in its first zlib header (DICTID).
        assert_eq!(adler32(d), 0xe3c6_a7c2);
        assert!(d.ends_with(b",*,enq=0."));
    }

    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        b << 16 | a
    }

    /// The first bytes kubectl 1.35.2 sent after `Upgrade: SPDY/3.1` for
    /// one local connection (recorded with a listener that answered 101):
    /// the error stream's SYN_STREAM, then a PING. Its zlib header (`78 f9`)
    /// names the dictionary by Adler-32: `e3 c6 a7 c2`.
    const KUBECTL_1_35_SYN_STREAM_AND_PING: &[u8] = &[
        0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3e, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0x25, 0x3a, 0x70, 0x3a, 0x2b,
        0x29, 0x4a, 0x4d, 0xcc, 0x85, 0x16, 0x25, 0xac, 0xa9, 0xa0, 0x80, 0x86, 0x14, 0xcb, 0x45,
        0xe0, 0x1c, 0x60, 0x61, 0x60, 0x61, 0xc0, 0xc0, 0xc0, 0xc0, 0x59, 0x04, 0x89, 0xc6, 0x4c,
        0x50, 0xf2, 0x66, 0x34, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x80, 0x03, 0x00, 0x06, 0x00,
        0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,
    ];

    #[test]
    fn what_a_real_kubectl_sent_decodes() {
        let mut dec = Decoder::default();
        dec.push(KUBECTL_1_35_SYN_STREAM_AND_PING);
        let Some(Frame::SynStream {
            stream_id, headers, ..
        }) = dec.next_frame().unwrap()
        else {
            panic!("not a SYN_STREAM");
        };
        assert_eq!(stream_id, 1);
        assert_eq!(header(&headers, "streamtype"), Some("error"));
        assert_eq!(header(&headers, "port"), Some("8080"));
        assert_eq!(header(&headers, "requestid"), Some("0"));
        assert_eq!(dec.next_frame(), Ok(Some(Frame::Ping { id: 1 })));
        assert_eq!(dec.next_frame(), Ok(None));
    }

    #[test]
    fn every_frame_survives_a_round_trip() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: h(&[
                    ("streamtype", "error"),
                    ("port", "8080"),
                    ("requestid", "0"),
                ]),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 0,
                priority: 2,
                flags: FLAG_FIN,
                headers: h(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![],
            },
            Frame::Data {
                stream_id: 3,
                flags: 0,
                data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::new(),
            },
            Frame::RstStream {
                stream_id: 3,
                status: status::CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 65536), (1, 4, 100)],
            },
            Frame::Ping { id: 2 },
            Frame::Headers {
                stream_id: 1,
                flags: 0,
                headers: h(&[("x", "y\0z")]),
            },
            Frame::WindowUpdate {
                stream_id: 3,
                delta: 4096,
            },
            Frame::GoAway {
                last_good_stream_id: 3,
                status: 0,
            },
        ];
        assert_eq!(roundtrip(&frames), frames);
    }

    #[test]
    fn the_header_context_spans_the_connection() {
        // The same headers twice: the second block is much smaller, because
        // it refers back into the first (one context per direction).
        let mut enc = Encoder::default();
        let hs = h(&[
            ("streamtype", "data"),
            ("port", "8080"),
            ("requestid", "17"),
        ]);
        let first = enc.header_block(&hs);
        let second = enc.header_block(&hs);
        assert!(second.len() < first.len(), "{first:?} vs {second:?}");
        // A fresh decoder cannot read the second block alone.
        let mut fresh = Decompress::new(true);
        assert!(inflate(&mut fresh, &second).is_err());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut dec = Decoder::default();
        // A control frame of version 2.
        dec.push(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1]);
        assert_eq!(dec.next_frame(), Err(SpdyError::Version(2)));
        let mut dec = Decoder::default();
        // A PING whose payload is too short.
        dec.push(&[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 2, 0, 1]);
        assert_eq!(dec.next_frame(), Err(SpdyError::Malformed("PING")));
        let mut dec = Decoder::default();
        // A SYN_STREAM whose header block is not zlib.
        dec.push(&[
            0x80, 0x03, 0x00, 0x01, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4,
        ]);
        assert!(matches!(dec.next_frame(), Err(SpdyError::HeaderBlock(_))));
        // Unknown control frames (type 5, NOOP) are skipped, however many
        // a peer sends.
        let mut dec = Decoder::default();
        for _ in 0..200_000 {
            dec.push(&[0x80, 0x03, 0x00, 0x05, 0, 0, 0, 0]);
        }
        dec.push(&[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 9]);
        assert_eq!(dec.next_frame(), Ok(Some(Frame::Ping { id: 9 })));
        // A header block that ends its zlib stream and goes on.
        let mut z = Compress::new(Compression::default(), true);
        let mut block = Vec::with_capacity(64);
        z.compress_vec(&[0, 0, 0, 0], &mut block, FlushCompress::Finish)
            .unwrap();
        block.extend_from_slice(b"more");
        let mut fresh = Decompress::new(true);
        assert!(matches!(
            inflate(&mut fresh, &block),
            Err(SpdyError::HeaderBlock(_))
        ));
    }
}
