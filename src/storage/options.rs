//! Store settings: server-side encryption, object_store configuration keys over the AWS
//! environment, which of them are credentials (never printed), and the checked S3 builder.

use std::collections::BTreeMap;
use std::fmt;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

use crate::error::{Error, Result};

/// Server-side encryption of the objects written to S3 (SPEC 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sse {
    /// SSE-S3: keys managed by S3 (`AES256`).
    Aes256,
    /// SSE-KMS: a KMS key (the bucket's default, or the one given as the KMS key id).
    Kms,
    /// DSSE-KMS: dual-layer encryption with a KMS key.
    DsseKms,
}

impl Sse {
    /// The value S3 takes in `x-amz-server-side-encryption`.
    pub fn as_str(self) -> &'static str {
        match self {
            Sse::Aes256 => "AES256",
            Sse::Kms => "aws:kms",
            Sse::DsseKms => "aws:kms:dsse",
        }
    }

    /// Whether a KMS key id applies.
    pub fn uses_kms(self) -> bool {
        matches!(self, Sse::Kms | Sse::DsseKms)
    }
}

impl fmt::Display for Sse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Sse {
    type Err = Error;

    /// `aes256`, `aws:kms` or `aws:kms:dsse`, in any case.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "aes256" => Ok(Sse::Aes256),
            "aws:kms" => Ok(Sse::Kms),
            "aws:kms:dsse" => Ok(Sse::DsseKms),
            _ => Err(Error::StorageOption {
                key: SSE_KEY.into(),
                reason: format!(
                    "unknown server-side encryption {s:?}: expected aes256, aws:kms or aws:kms:dsse"
                ),
            }),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Sse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

const SSE_KEY: &str = "aws_server_side_encryption";
const KMS_KEY_ID_KEY: &str = "aws_sse_kms_key_id";
const BUCKET_KEY_KEY: &str = "aws_sse_bucket_key_enabled";

/// Settings of the object store behind a location, as object_store configuration keys
/// (`aws_endpoint`, `aws_region`, `aws_server_side_encryption`, `aws_sse_kms_key_id`, ...).
/// They are applied over the standard environment (`AWS_*` variables, instance and task
/// roles), to `s3://` locations. Values may be credentials, so `Debug` prints the keys only,
/// and no error message carries a value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageOptions(BTreeMap<String, String>);

impl StorageOptions {
    /// No settings beyond the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one configuration key (lower-case object_store name, e.g. `aws_endpoint`),
    /// unchecked; see [`StorageOptions::with_option`] for keys from users.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(key.into().to_ascii_lowercase(), value.into());
        self
    }

    /// Sets one S3 configuration key given by a user (`aws_endpoint`, `endpoint`,
    /// `AWS_REGION`, ...), stored under its canonical name so later settings of the same key
    /// replace it. An unknown key is an [`Error::StorageOption`] naming the key only.
    pub fn with_option(self, key: &str, value: impl Into<String>) -> Result<Self> {
        let canonical = canonical_key(key).ok_or_else(|| Error::StorageOption {
            key: key.to_string(),
            reason: "not an S3 storage option (object_store keys such as aws_endpoint, \
                     aws_region, aws_server_side_encryption, aws_sse_kms_key_id)"
                .into(),
        })?;
        Ok(self.with(canonical, value))
    }

    /// Server-side encryption of every object written. SSE-S3 takes no KMS key: choosing
    /// it drops a KMS key id and bucket-key setting set before.
    pub fn with_sse(mut self, sse: Sse) -> Self {
        if !sse.uses_kms() {
            self.0.remove(KMS_KEY_ID_KEY);
            self.0.remove(BUCKET_KEY_KEY);
        }
        self.with(SSE_KEY, sse.as_str())
    }

    /// The KMS key (id, ARN or `alias/...`) of SSE-KMS / DSSE-KMS.
    pub fn with_sse_kms_key_id(self, key_id: impl Into<String>) -> Self {
        self.with(KMS_KEY_ID_KEY, key_id)
    }

    /// These settings, then `over`'s (which win).
    pub fn merged(mut self, over: &StorageOptions) -> Self {
        for (k, v) in over.iter() {
            self.0.insert(k.to_string(), v.to_string());
        }
        self
    }

    /// The value of a key, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every key and value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether no setting is given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The credential values among the settings (access key id, secret key, session token,
    /// SSE-C key): what must never be printed.
    pub fn credentials(&self) -> impl Iterator<Item = &str> {
        self.iter()
            .filter(|(k, _)| is_credential_key(k))
            .map(|(_, v)| v)
    }

    /// Checks the settings as an `s3://` location would use them (over the environment):
    /// a known server-side encryption, and a KMS key id only with SSE-KMS or DSSE-KMS.
    pub fn check(&self) -> Result<()> {
        s3_builder(self).map(|_| ())
    }
}

impl fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl TryFrom<BTreeMap<String, String>> for StorageOptions {
    type Error = Error;

    /// Keys checked as by [`StorageOptions::with_option`].
    fn try_from(map: BTreeMap<String, String>) -> Result<Self> {
        map.into_iter()
            .try_fold(StorageOptions::new(), |o, (k, v)| o.with_option(&k, v))
    }
}

impl<'de> serde::Deserialize<'de> for StorageOptions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(d)?;
        StorageOptions::try_from(map).map_err(serde::de::Error::custom)
    }
}

/// The canonical object_store name of an S3 configuration key (`endpoint` ->
/// `aws_endpoint`), `None` when object_store does not know it.
fn canonical_key(key: &str) -> Option<String> {
    let key: AmazonS3ConfigKey = key.to_ascii_lowercase().parse().ok()?;
    Some(key.as_ref().to_string())
}

/// Whether an S3 configuration key (any spelling object_store accepts, e.g. an `AWS_*`
/// variable name) holds a credential.
pub fn is_credential_key(key: &str) -> bool {
    canonical_key(key).is_some_and(|k| {
        [
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
            "aws_sse_customer_key_base64",
        ]
        .contains(&k.as_str())
    })
}

/// The environment's S3 settings, then `options`, checked: an encryption S3 knows, and a
/// KMS key id only with SSE-KMS / DSSE-KMS (object_store would silently send none). A
/// plain-HTTP endpoint (a local S3-compatible server) is allowed without a separate
/// `aws_allow_http` (set on the builder, which keeps it inside the client options).
pub(super) fn s3_builder(options: &StorageOptions) -> Result<AmazonS3Builder> {
    let mut builder = AmazonS3Builder::from_env();
    for (key, value) in options.iter() {
        let parsed: AmazonS3ConfigKey = key.parse().map_err(|_| Error::StorageOption {
            key: key.to_string(),
            reason: "not an S3 storage option".into(),
        })?;
        builder = builder.with_config(parsed, value);
    }
    let config = |key: &str| {
        builder.get_config_value(&key.parse::<AmazonS3ConfigKey>().expect("known S3 key"))
    };
    let sse = match config(SSE_KEY) {
        // SSE-C (a customer key) is object_store's to check; it is not offered as `--sse`.
        Some(v) if v == "sse-c" => None,
        Some(v) => Some(v.parse::<Sse>()?),
        None => None,
    };
    if config(KMS_KEY_ID_KEY).is_some() && !sse.is_some_and(Sse::uses_kms) {
        return Err(Error::StorageOption {
            key: KMS_KEY_ID_KEY.into(),
            reason: format!(
                "a KMS key id needs server-side encryption aws:kms or aws:kms:dsse, not {}",
                sse.map_or("none".to_string(), |s| s.to_string())
            ),
        });
    }
    let http = config("aws_endpoint").is_some_and(|e| e.starts_with("http://"));
    if http {
        builder = builder.with_allow_http(true);
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Location;

    #[test]
    fn sse_modes_parse_in_any_case_and_unknown_ones_are_named() {
        for (text, sse) in [
            ("aes256", Sse::Aes256),
            ("AES256", Sse::Aes256),
            ("aws:kms", Sse::Kms),
            ("AWS:KMS:DSSE", Sse::DsseKms),
        ] {
            assert_eq!(text.parse::<Sse>().unwrap(), sse);
        }
        assert_eq!(
            "kms".parse::<Sse>().unwrap_err().to_string(),
            "storage option aws_server_side_encryption: unknown server-side encryption \"kms\": \
             expected aes256, aws:kms or aws:kms:dsse"
        );
        assert_eq!(Sse::DsseKms.to_string(), "aws:kms:dsse");
    }

    #[test]
    fn options_take_canonical_keys_and_refuse_unknown_ones_without_their_value() {
        let o = StorageOptions::new()
            .with_option("endpoint", "http://a")
            .unwrap()
            .with_option("AWS_ENDPOINT_URL", "http://b")
            .unwrap()
            .with_option("region", "eu-west-1")
            .unwrap();
        assert_eq!(
            o.iter().collect::<Vec<_>>(),
            [("aws_endpoint", "http://b"), ("aws_region", "eu-west-1")]
        );
        let err = StorageOptions::new()
            .with_option("aws_secret_acess_key", "s3cr3t-value")
            .unwrap_err();
        assert!(matches!(err, Error::StorageOption { .. }));
        let text = err.to_string();
        assert!(
            text.starts_with("storage option aws_secret_acess_key: not an S3 storage option"),
            "{text}"
        );
        assert!(!text.contains("s3cr3t-value"));
        let err = StorageOptions::try_from(BTreeMap::from([(
            "bogus".to_string(),
            "s3cr3t-value".to_string(),
        )]))
        .unwrap_err();
        assert!(!err.to_string().contains("s3cr3t-value"), "{err}");
    }

    #[test]
    fn sse_settings_and_their_precedence() {
        let kms = StorageOptions::new()
            .with_sse(Sse::Kms)
            .with_sse_kms_key_id("alias/lake")
            .with("aws_sse_bucket_key_enabled", "true");
        assert_eq!(kms.get("aws_server_side_encryption"), Some("aws:kms"));
        assert_eq!(kms.get("aws_sse_kms_key_id"), Some("alias/lake"));
        kms.check().unwrap();
        // SSE-S3 has no KMS key: choosing it drops the key id and the bucket-key setting.
        let s3 = kms.clone().with_sse(Sse::Aes256);
        assert_eq!(
            s3.iter().collect::<Vec<_>>(),
            [("aws_server_side_encryption", "AES256")]
        );
        s3.check().unwrap();
        // `merged`: the other's keys win, the rest stays.
        let over = StorageOptions::new().with_sse(Sse::DsseKms);
        let m = kms.merged(&over);
        assert_eq!(m.get("aws_server_side_encryption"), Some("aws:kms:dsse"));
        assert_eq!(m.get("aws_sse_kms_key_id"), Some("alias/lake"));
        m.check().unwrap();
    }

    #[test]
    fn inconsistent_sse_settings_are_refused() {
        let cases = [
            (
                StorageOptions::new().with_sse_kms_key_id("alias/lake"),
                "storage option aws_sse_kms_key_id: a KMS key id needs server-side encryption \
                 aws:kms or aws:kms:dsse, not none",
            ),
            (
                StorageOptions::new()
                    .with_sse(Sse::Aes256)
                    .with_sse_kms_key_id("alias/lake"),
                "storage option aws_sse_kms_key_id: a KMS key id needs server-side encryption \
                 aws:kms or aws:kms:dsse, not AES256",
            ),
            (
                StorageOptions::new()
                    .with_option("aws_server_side_encryption", "aws:kms2")
                    .unwrap(),
                "storage option aws_server_side_encryption: unknown server-side encryption \
                 \"aws:kms2\": expected aes256, aws:kms or aws:kms:dsse",
            ),
        ];
        for (o, msg) in cases {
            assert_eq!(o.check().unwrap_err().to_string(), msg);
            // An s3:// location with them is refused the same way.
            let err = Location::parse_with("s3://bucket/lake", &o).unwrap_err();
            assert_eq!(err.to_string(), msg);
        }
    }

    #[test]
    fn credentials_are_known_and_never_printed() {
        let o = StorageOptions::new()
            .with_option("aws_access_key_id", "AKIAUNITTESTKEY00001")
            .unwrap()
            .with_option("secret_access_key", "unit/secret/value/0123")
            .unwrap()
            .with_option("token", "unit-session-token-0123")
            .unwrap()
            .with_option("aws_region", "us-east-1")
            .unwrap();
        let mut creds: Vec<&str> = o.credentials().collect();
        creds.sort();
        assert_eq!(
            creds,
            [
                "AKIAUNITTESTKEY00001",
                "unit-session-token-0123",
                "unit/secret/value/0123"
            ]
        );
        for key in [
            "AWS_SECRET_ACCESS_KEY",
            "aws_session_token",
            "token",
            "sse_customer_key_base64",
        ] {
            assert!(is_credential_key(key), "{key}");
        }
        for key in ["AWS_REGION", "aws_sse_kms_key_id", "endpoint", "nonsense"] {
            assert!(!is_credential_key(key), "{key}");
        }
        assert_eq!(
            format!("{o:?}"),
            "{\"aws_access_key_id\", \"aws_region\", \"aws_secret_access_key\", \"aws_session_token\"}"
        );
        // object_store's S3 client shows the access key id in its Debug; a Location does not
        // show its store's.
        let loc = Location::parse_with("s3://bucket/lake", &o).unwrap();
        assert_eq!(
            format!("{loc:?}"),
            "Location { url: \"s3://bucket/lake\", store: AmazonS3(bucket) }"
        );
    }

    #[test]
    fn options_override_the_environment_and_an_http_endpoint_is_allowed() {
        let opts = StorageOptions::new()
            .with("AWS_ENDPOINT", "http://127.0.0.1:1")
            .with("aws_region", "eu-west-1");
        let builder = s3_builder(&opts).unwrap();
        let get = |k: AmazonS3ConfigKey| builder.get_config_value(&k);
        let endpoint = get(AmazonS3ConfigKey::Endpoint).unwrap();
        assert_eq!(endpoint, "http://127.0.0.1:1");
        assert_eq!(get(AmazonS3ConfigKey::Region).unwrap(), "eu-west-1");
        let allow = AmazonS3ConfigKey::Client(object_store::ClientConfigKey::AllowHttp);
        assert_eq!(get(allow).unwrap(), "true");
    }
}
