//! Query-string presigning for S3 URLs, computed locally: SigV4, the URL botocore produces with
//! `signature_version="s3v4"`, and SigV2, botocore's default for presigning in the regions that
//! still take it. The same URL for the same request and time: same string to sign, same query
//! order, same encoding.

use std::fmt::Write;
use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// One URL to presign. `endpoint` is scheme and authority (`https://bkt.s3.amazonaws.com`),
/// `path_prefix` what comes before the key (`/bkt` in path style, empty in virtual-host style).
#[derive(Debug)]
pub struct PresignRequest<'a> {
    pub method: &'a str,
    pub endpoint: &'a str,
    pub host: &'a str,
    pub path_prefix: &'a str,
    pub key: &'a str,
    /// Query parameters of the operation (versionId, response-content-type, ...), unencoded.
    pub query: &'a [(String, String)],
    /// Headers the user of the URL must send (content-type, x-amz-meta-*), lowercase names.
    pub headers: &'a [(String, String)],
    pub region: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub session_token: Option<&'a str>,
    /// As the caller gave it (botocore writes `str(ExpiresIn)`).
    pub expires_in: &'a str,
    /// Seconds since the Unix epoch.
    pub now: i64,
}

pub fn presign_url(request: &PresignRequest<'_>) -> String {
    let (date, timestamp) = amz_date(request.now);
    let scope = format!("{date}/{}/s3/aws4_request", request.region);

    let path = object_path(request.path_prefix, request.key);

    let mut signed_headers = String::from("host");
    let mut headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    headers.push(("host", request.host));
    headers.sort_unstable();
    if headers.len() > 1 {
        signed_headers = headers
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(";");
    }

    // The operation's own parameters come first in the URL, then the X-Amz-* ones, as botocore
    // orders them; the canonical query is the same pairs sorted.
    let mut query: Vec<(String, String)> = request
        .query
        .iter()
        .map(|(n, v)| (encoded(n), encoded(v)))
        .collect();
    query.push(("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()));
    query.push((
        "X-Amz-Credential".into(),
        encoded(&format!("{}/{scope}", request.access_key)),
    ));
    query.push(("X-Amz-Date".into(), timestamp.clone()));
    query.push(("X-Amz-Expires".into(), encoded(request.expires_in)));
    query.push(("X-Amz-SignedHeaders".into(), encoded(&signed_headers)));
    if let Some(token) = request.session_token {
        query.push(("X-Amz-Security-Token".into(), encoded(token)));
    }
    let mut sorted: Vec<&(String, String)> = query.iter().collect();
    sorted.sort_unstable();

    let mut canonical = String::with_capacity(512);
    canonical.push_str(request.method);
    canonical.push('\n');
    canonical.push_str(&path);
    canonical.push('\n');
    join_query(&mut canonical, sorted.into_iter());
    canonical.push('\n');
    for (name, value) in &headers {
        // SigV4 canonical values: trimmed, runs of whitespace inside collapsed to one space,
        // whitespace being what botocore's `str.split()` splits on.
        canonical.push_str(name);
        canonical.push(':');
        let words = value
            .split(is_python_whitespace)
            .filter(|word| !word.is_empty());
        for (i, word) in words.enumerate() {
            if i > 0 {
                canonical.push(' ');
            }
            canonical.push_str(word);
        }
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed_headers);
    canonical.push_str("\nUNSIGNED-PAYLOAD");

    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let signing_key = signing_key(request.secret_key, &date, request.region);
    let signature = hex(&hmac(&signing_key, string_to_sign.as_bytes()));

    let mut url = String::with_capacity(request.endpoint.len() + path.len() + 400);
    url.push_str(request.endpoint);
    url.push_str(&path);
    url.push('?');
    join_query(&mut url, query.iter());
    url.push_str("&X-Amz-Signature=");
    url.push_str(&signature);
    url
}

/// One URL to presign with SigV2 (botocore's `HmacV1QueryAuth`).
#[derive(Debug)]
pub struct PresignV2Request<'a> {
    pub method: &'a str,
    pub endpoint: &'a str,
    pub path_prefix: &'a str,
    /// Signed as part of the path, whether or not the URL has it there (virtual-host style).
    pub bucket: &'a str,
    pub key: &'a str,
    /// Query parameters of the operation, unencoded, in the order of the call's Params.
    pub query: &'a [(String, String)],
    /// The operation's header parameters, lowercase names, in the order of the call's Params.
    /// SigV2 signs only x-amz-*, content-md5 and content-type, and moves them to the query.
    pub headers: &'a [(String, String)],
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub session_token: Option<&'a str>,
    /// The Unix time the URL expires at, as botocore writes it.
    pub expires: &'a str,
}

/// Query parameters SigV2 signs as sub-resources (botocore's `QSAOfInterest`, those that can
/// be parameters of the operations presigned here).
const SIGNED_SUB_RESOURCES: &[&str] = &[
    "partNumber",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "uploadId",
    "versionId",
];

pub fn presign_url_v2(request: &PresignV2Request<'_>) -> String {
    let path = object_path(request.path_prefix, request.key);
    // The headers as botocore's request has them when it signs: the operation's, then the
    // session token, then Date (the expiry time).
    let mut headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if let Some(token) = request.session_token {
        headers.push(("x-amz-security-token", token));
    }
    let standard = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.trim_matches(is_python_whitespace))
    };
    let mut string_to_sign = format!(
        "{}\n{}\n{}\n{}\n",
        request.method,
        standard("content-md5"),
        standard("content-type"),
        request.expires
    );
    let mut amz: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-amz-"))
        .map(|&(n, v)| (n, v.trim_matches(is_python_whitespace)))
        .collect();
    amz.sort_unstable();
    for (name, value) in amz {
        let _ = writeln!(string_to_sign, "{name}:{value}");
    }
    string_to_sign.push('/');
    uri_encode(&mut string_to_sign, request.bucket, false);
    string_to_sign.push('/');
    uri_encode(&mut string_to_sign, request.key, true);
    let mut sub_resources: Vec<&(String, String)> = request
        .query
        .iter()
        .filter(|(n, _)| SIGNED_SUB_RESOURCES.contains(&n.as_str()))
        .collect();
    sub_resources.sort_by_key(|(n, _)| n.as_str());
    for (i, (name, value)) in sub_resources.into_iter().enumerate() {
        string_to_sign.push(if i == 0 { '?' } else { '&' });
        let _ = write!(string_to_sign, "{name}={value}");
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(request.secret_key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    let signature = aws_smithy_types::base64::encode(mac.finalize().into_bytes());

    let mut query: Vec<(String, String)> = request
        .query
        .iter()
        .map(|(n, v)| (encoded(n), encoded(v)))
        .collect();
    query.push(("AWSAccessKeyId".into(), encoded(request.access_key)));
    query.push(("Signature".into(), encoded(&signature)));
    for (name, value) in headers {
        if name.starts_with("x-amz-") || name == "content-md5" || name == "content-type" {
            query.push((encoded(name), encoded(value)));
        }
    }
    query.push(("Expires".into(), encoded(request.expires)));
    let mut url = String::with_capacity(request.endpoint.len() + path.len() + 200);
    url.push_str(request.endpoint);
    url.push_str(&path);
    url.push('?');
    join_query(&mut url, query.iter());
    url
}

/// The URL path of an object: the endpoint's prefix, then the key encoded with its slashes.
fn object_path(prefix: &str, key: &str) -> String {
    let mut path = String::with_capacity(prefix.len() + key.len() + 8);
    path.push_str(prefix);
    path.push('/');
    uri_encode(&mut path, key, true);
    path
}

/// Python's `str.isspace()`: Unicode whitespace, and the four separators \x1c-\x1f.
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn join_query<'a>(out: &mut String, pairs: impl Iterator<Item = &'a (String, String)>) {
    for (index, (name, value)) in pairs.enumerate() {
        if index > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
}

/// The derived SigV4 key for (secret, date, region). It changes once a day, so the last one
/// is kept: presigning many URLs then costs one HMAC each instead of five.
fn signing_key(secret: &str, date: &str, region: &str) -> [u8; 32] {
    type Cached = Option<(String, String, String, [u8; 32])>;
    static LAST: Mutex<Cached> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((s, d, r, key)) = last.as_ref() {
        if s == secret && d == date && r == region {
            return *key;
        }
    }
    let key = hmac(
        &hmac(
            &hmac(
                &hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes()),
                region.as_bytes(),
            ),
            b"s3",
        ),
        b"aws4_request",
    );
    *last = Some((secret.to_owned(), date.to_owned(), region.to_owned(), key));
    key
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex, as SigV4 writes digests and signatures.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

fn encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    uri_encode(&mut out, text, false);
    out
}

/// SigV4's URI encoding: everything but `A-Za-z0-9-._~` percent-encoded in uppercase hex, and
/// `/` kept in paths.
fn uri_encode(out: &mut String, text: &str, keep_slash: bool) {
    for &byte in text.as_bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` for a Unix time, in UTC.
fn amz_date(unix_seconds: i64) -> (String, String) {
    let days = unix_seconds.div_euclid(86_400);
    let seconds = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let date = format!("{year:04}{month:02}{day:02}");
    let timestamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    );
    (date, timestamp)
}

/// Proleptic Gregorian (year, month, day) of a count of days since 1970-01-01 (H. Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(amz_date(0), ("19700101".into(), "19700101T000000Z".into()));
        assert_eq!(
            amz_date(1_795_699_384),
            ("20261126".into(), "20261126T132304Z".into())
        );
        // A leap day.
        assert_eq!(amz_date(951_782_400).1, "20000229T000000Z");
        assert_eq!(amz_date(-1).1, "19691231T235959Z");
    }

    #[test]
    fn encoding() {
        assert_eq!(encoded("a b/ü+c~"), "a%20b%2F%C3%BC%2Bc~");
        let mut path = String::new();
        uri_encode(&mut path, "a b/ü+c~!*()'", true);
        assert_eq!(path, "a%20b/%C3%BC%2Bc~%21%2A%28%29%27");
    }

    /// The example of AWS's SigV4 documentation for a presigned GET ("Authenticating Requests:
    /// Using Query Parameters").
    #[test]
    fn matches_the_aws_documentation_example() {
        let url = presign_url(&PresignRequest {
            method: "GET",
            endpoint: "https://examplebucket.s3.amazonaws.com",
            host: "examplebucket.s3.amazonaws.com",
            path_prefix: "",
            key: "test.txt",
            query: &[],
            headers: &[],
            region: "us-east-1",
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            session_token: None,
            expires_in: "86400",
            now: 1_369_353_600, // 2013-05-24T00:00:00Z
        });
        assert_eq!(
            url,
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    /// The example of AWS's SigV2 documentation for a presigned GET ("Query string request
    /// authentication alternative").
    #[test]
    fn matches_the_aws_sigv2_documentation_example() {
        let url = presign_url_v2(&PresignV2Request {
            method: "GET",
            endpoint: "https://johnsmith.s3.amazonaws.com",
            path_prefix: "",
            bucket: "johnsmith",
            key: "photos/puppy.jpg",
            query: &[],
            headers: &[],
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            session_token: None,
            expires: "1175139620",
        });
        assert_eq!(
            url,
            "https://johnsmith.s3.amazonaws.com/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE\
             &Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620"
        );
    }
}
