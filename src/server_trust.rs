//! Which server certificates the engine's own client takes when it verifies them: those
//! webpki takes (rustls's checks), and the two more that OpenSSL, and so botocore, takes:
//!
//! - a self-signed certificate the CA bundle holds, used as the server's own (made by
//!   `openssl req -x509` for a MinIO server: `verify="public.crt"`). webpki refuses it,
//!   as it is a CA's (`CaUsedAsEndEntity`); OpenSSL finds it among the trusted ones and checks
//!   its dates and names only.
//! - a certificate without DNS names in its subjectAltName, whose subject's common name is
//!   the host. webpki reads names from subjectAltName only; OpenSSL, with the settings botocore
//!   gives Python's ssl module, falls back to the common name then.
//!
//! Anything else webpki refuses is refused, with webpki's reason. With `verify=False` any
//! certificate is taken; the handshake's signatures are still checked, as Python's
//! `ssl.CERT_NONE` checks them: only who signed the certificate, its names and its dates are
//! not.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::own_http::Trust;

/// Verifies server certificates as botocore's TLS does (see the module).
#[derive(Debug)]
pub struct AsBotocoreVerifies {
    takes: Takes,
    algorithms: WebPkiSupportedAlgorithms,
}

#[derive(Debug)]
enum Takes {
    /// Any certificate (`verify=False`).
    Any,
    /// Those a CA bundle vouches for. `webpki` is None without a bundle (plain http): no
    /// certificate is taken then.
    Bundle {
        webpki: Option<Arc<WebPkiServerVerifier>>,
        bundle: Vec<CertificateDer<'static>>,
    },
}

impl AsBotocoreVerifies {
    /// A verifier of `trust`, checking signatures with `provider`'s algorithms.
    pub fn new(trust: Trust, provider: Arc<CryptoProvider>) -> Result<Self, rustls::Error> {
        let algorithms = provider.signature_verification_algorithms;
        let takes = match trust {
            Trust::AnyCertificate => Takes::Any,
            Trust::Bundle(bundle) => {
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(bundle.iter().cloned());
                let webpki = if roots.is_empty() {
                    None
                } else {
                    let builder =
                        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider);
                    Some(
                        builder
                            .build()
                            .map_err(|e| rustls::Error::General(format!("CA bundle: {e}")))?,
                    )
                };
                Takes::Bundle { webpki, bundle }
            }
        };
        Ok(Self { takes, algorithms })
    }

    /// Whether OpenSSL, trusting `bundle`, takes a certificate webpki refused with `refusal`.
    fn openssl_takes(
        bundle: &[CertificateDer<'static>],
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        refusal: &rustls::Error,
        now: UnixTime,
    ) -> bool {
        let Some(fields) = CertificateFields::read(end_entity) else {
            return false;
        };
        let trusted_itself = fields.issuer == fields.subject
            && bundle
                .iter()
                .any(|trusted| trusted.as_ref() == end_entity.as_ref());
        if trusted_itself {
            let now = now.as_secs() as i64;
            let in_date = fields.not_before <= now && now <= fields.not_after;
            let named = ParsedCertificate::try_from(end_entity)
                .and_then(|parsed| verify_server_name(&parsed, server_name))
                .is_ok();
            return in_date && (named || fields.common_name_is(server_name));
        }
        // webpki checks the chain before the name: a refusal for the name is of a chain
        // it trusts.
        let refused_for_name = matches!(
            refusal,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        );
        refused_for_name && fields.common_name_is(server_name)
    }
}

impl ServerCertVerifier for AsBotocoreVerifies {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Takes::Bundle { webpki, bundle } = &self.takes else {
            return Ok(ServerCertVerified::assertion());
        };
        let Some(webpki) = webpki else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .or_else(|refusal| {
                if Self::openssl_takes(bundle, end_entity, server_name, &refusal, now) {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(refusal)
                }
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What OpenSSL's checks above read of a certificate (X.509, DER).
struct CertificateFields<'a> {
    /// The issuer's and the subject's names, as encoded.
    issuer: &'a [u8],
    subject: &'a [u8],
    /// Validity, in seconds since the Unix epoch.
    not_before: i64,
    not_after: i64,
    /// The subject's common names (those in a string type OpenSSL compares).
    common_names: Vec<&'a [u8]>,
    /// Whether subjectAltName has DNS names (OpenSSL then ignores the common names).
    has_dns_names: bool,
}

const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03]; // 2.5.4.3
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION: u8 = 0xa0; // [0] EXPLICIT
const EXTENSIONS: u8 = 0xa3; // [3] EXPLICIT
const DNS_NAME: u8 = 0x82; // GeneralName's [2] IMPLICIT IA5String

impl<'a> CertificateFields<'a> {
    /// The fields of a DER certificate, or None if it is not one.
    fn read(certificate: &'a [u8]) -> Option<Self> {
        let mut certificate = Der(Der(certificate).expect(SEQUENCE)?);
        let mut tbs = Der(certificate.expect(SEQUENCE)?);
        if tbs.peek() == Some(VERSION) {
            tbs.next()?;
        }
        tbs.next()?; // serialNumber
        tbs.expect(SEQUENCE)?; // signature
        let issuer = tbs.expect(SEQUENCE)?;
        let mut validity = Der(tbs.expect(SEQUENCE)?);
        let not_before = validity.time()?;
        let not_after = validity.time()?;
        let subject = tbs.expect(SEQUENCE)?;
        tbs.expect(SEQUENCE)?; // subjectPublicKeyInfo
        let mut has_dns_names = false;
        while let Some((tag, content)) = tbs.next() {
            if tag == EXTENSIONS {
                has_dns_names = extensions_have_dns_names(content)?;
            }
        }
        Some(Self {
            issuer,
            subject,
            not_before,
            not_after,
            common_names: common_names(subject)?,
            has_dns_names,
        })
    }

    /// Whether a common name is `server_name`, where OpenSSL looks at common names: for a
    /// host name (not an IP address), when subjectAltName has no DNS name.
    fn common_name_is(&self, server_name: &ServerName<'_>) -> bool {
        let ServerName::DnsName(host) = server_name else {
            return false;
        };
        !self.has_dns_names
            && (self.common_names.iter()).any(|name| host_matches(name, host.as_ref().as_bytes()))
    }
}

/// The subject's common names: UTF8String, PrintableString or IA5String values (the types
/// certificates use for them).
fn common_names(name: &[u8]) -> Option<Vec<&[u8]>> {
    let mut names = Vec::new();
    let mut relative_names = Der(name);
    while let Some(relative_name) = relative_names.next() {
        let mut attributes = Der(expect_tag(relative_name, SET)?);
        while let Some(attribute) = attributes.next() {
            let mut attribute = Der(expect_tag(attribute, SEQUENCE)?);
            let oid = attribute.expect(OID)?;
            let (value_type, value) = attribute.next()?;
            if oid == COMMON_NAME && matches!(value_type, 0x0c | 0x13 | 0x16) {
                names.push(value);
            }
        }
    }
    Some(names)
}

/// Whether the extensions' subjectAltName holds a DNS name.
fn extensions_have_dns_names(extensions: &[u8]) -> Option<bool> {
    let mut extensions = Der(Der(extensions).expect(SEQUENCE)?);
    while let Some(extension) = extensions.next() {
        let mut extension = Der(expect_tag(extension, SEQUENCE)?);
        if extension.expect(OID)? != SUBJECT_ALT_NAME {
            continue;
        }
        let mut value = extension.next()?;
        if value.0 != OCTET_STRING {
            value = extension.next()?; // past `critical`
        }
        let mut names = Der(Der(expect_tag(value, OCTET_STRING)?).expect(SEQUENCE)?);
        while let Some((tag, _)) = names.next() {
            if tag == DNS_NAME {
                return Some(true);
            }
        }
    }
    Some(false)
}

/// OpenSSL's match of a name in a certificate against the host, as Python's ssl module sets it
/// (`X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS`): equal but for ASCII case, or `*.` and at least
/// two more labels standing for the host's first label and the rest of it.
fn host_matches(pattern: &[u8], host: &[u8]) -> bool {
    if pattern.eq_ignore_ascii_case(host) {
        return true;
    }
    let Some(parent) = pattern.strip_prefix(b"*.") else {
        return false;
    };
    let host_parent = host
        .iter()
        .position(|&b| b == b'.')
        .map(|dot| (dot, &host[dot + 1..]));
    parent.contains(&b'.')
        && !parent.contains(&b'*')
        && host_parent.is_some_and(|(dot, rest)| dot > 0 && rest.eq_ignore_ascii_case(parent))
}

fn expect_tag((tag, content): (u8, &[u8]), expected: u8) -> Option<&[u8]> {
    (tag == expected).then_some(content)
}

/// A reader of DER elements, one after another.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next element's tag and content.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (length, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let (bytes, rest) = rest.split_at(count);
            let length = bytes.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
            (length, rest)
        };
        if rest.len() < length {
            return None;
        }
        let (content, rest) = rest.split_at(length);
        self.0 = rest;
        Some((tag, content))
    }

    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        expect_tag(self.next()?, tag)
    }

    /// A UTCTime or GeneralizedTime (`YYMMDDHHMMSSZ`, `YYYYMMDDHHMMSSZ`), in seconds since the
    /// Unix epoch.
    fn time(&mut self) -> Option<i64> {
        let (tag, text) = self.next()?;
        let text = text.strip_suffix(b"Z")?;
        let (year, rest) = match (tag, text.len()) {
            (UTC_TIME, 12) => {
                let year = digits(&text[..2])?;
                (
                    if year < 50 { 2000 + year } else { 1900 + year },
                    &text[2..],
                )
            }
            (GENERALIZED_TIME, 14) => (digits(&text[..4])?, &text[4..]),
            _ => return None,
        };
        let field = |at: usize| digits(&rest[at..at + 2]);
        let days = days_from_civil(year, field(0)?, field(2)?);
        Some(days * 86_400 + field(4)? * 3600 + field(6)? * 60 + field(8)?)
    }
}

fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_match_as_in_openssl() {
        assert!(host_matches(b"Minio.Local", b"minio.local"));
        assert!(host_matches(b"*.s3.example.com", b"bucket.s3.example.com"));
        assert!(!host_matches(b"*.example.com", b"a.b.example.com"));
        assert!(!host_matches(b"*.com", b"example.com"));
        assert!(!host_matches(b"*.example.com", b"example.com"));
        assert!(!host_matches(b"b*.example.com", b"bucket.example.com"));
        assert!(!host_matches(b"minio.local", b"minio.local.evil"));
    }

    #[test]
    fn dates_count_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(Der(b"\x17\x0d491231235959Z").time(), Some(2_524_607_999));
        assert_eq!(Der(b"\x18\x0f20240229000000Z").time(), Some(1_709_164_800));
    }
}
