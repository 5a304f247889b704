//! Storage profiles: named S3-compatible buckets (Cloudflare R2, Storj, any S3 server).
//!
//! `S3_*` defines `default`, `CLOUDFLARE_R2_*` defines `r2`, `STORJ_*` defines `storj` (the
//! variable names the Django and Supabase deployments already use), and
//! `STORAGE_<NAME>_*` defines any other.

use secrecy::SecretString;
use url::Url;

use super::{ConfigError, Env};

/// One bucket and how to reach it.
#[derive(Debug, Clone)]
pub struct StorageProfile {
    /// Lower-case profile name, as commands name it in `storage`.
    pub name: String,
    /// What `recordings.storage_provider` says: `r2`, `storj` or `s3`.
    pub provider: String,
    /// S3 API endpoint with scheme, e.g. `https://<account>.r2.cloudflarestorage.com`.
    pub endpoint: Url,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// Base of public object URLs (custom domain or r2.dev); `None` means path-style endpoint
    /// URLs.
    pub public_base_url: Option<Url>,
    pub force_path_style: bool,
}

/// The variable names one profile is read from.
struct ProfileVars {
    name: String,
    endpoint: String,
    bucket: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    public_base_url: String,
    force_path_style: Option<String>,
    default_region: &'static str,
}

/// The variable suffixes of one family: endpoint, bucket, region, access key id, secret
/// access key, public base URL, and path style (`None`: always path style).
struct Suffixes([&'static str; 6], Option<&'static str>);

const GENERIC_NAMES: [&str; 6] = [
    "ENDPOINT",
    "BUCKET",
    "REGION",
    "ACCESS_KEY_ID",
    "SECRET_ACCESS_KEY",
    "PUBLIC_BASE_URL",
];

const GENERIC: Suffixes = Suffixes(GENERIC_NAMES, Some("FORCE_PATH_STYLE"));
/// The Django deployment's names.
const R2: Suffixes = Suffixes(
    [
        "ENDPOINT_URL",
        "STORAGE_BUCKET_NAME",
        "REGION_NAME",
        "ACCESS_KEY_ID",
        "SECRET_ACCESS_KEY",
        "CUSTOM_DOMAIN",
    ],
    None,
);
/// The Supabase deployment's names (and the generic ones for what it did not have).
const STORJ: Suffixes = Suffixes(GENERIC_NAMES, None);

impl ProfileVars {
    fn new(name: &str, prefix: &str, suffixes: &Suffixes, default_region: &'static str) -> Self {
        let var = |suffix: &str| format!("{prefix}{suffix}");
        let [endpoint, bucket, region, access_key_id, secret_access_key, public_base_url] =
            suffixes.0.map(var);
        Self {
            name: name.to_owned(),
            endpoint,
            bucket,
            region,
            access_key_id,
            secret_access_key,
            public_base_url,
            force_path_style: suffixes.1.map(var),
            default_region,
        }
    }

    fn generic(name: &str, prefix: &str) -> Self {
        Self::new(name, prefix, &GENERIC, "us-east-1")
    }

    fn all(&self) -> impl Iterator<Item = &str> {
        [
            &self.endpoint,
            &self.bucket,
            &self.region,
            &self.access_key_id,
            &self.secret_access_key,
            &self.public_base_url,
        ]
        .into_iter()
        .chain(self.force_path_style.as_ref())
        .map(String::as_str)
    }

    /// `None` when none of the profile's variables is set.
    fn load(&self, env: &Env) -> Result<Option<StorageProfile>, ConfigError> {
        if self.all().all(|var| env.get(var).is_none()) {
            return Ok(None);
        }
        let endpoint = with_scheme(&self.endpoint, env.required(&self.endpoint)?)?;
        let public_base_url = env
            .get(&self.public_base_url)
            .map(|raw| with_scheme(&self.public_base_url, raw))
            .transpose()?;
        let force_path_style = match &self.force_path_style {
            Some(var) => env.flag_or(var, true)?,
            None => true,
        };
        Ok(Some(StorageProfile {
            name: self.name.clone(),
            provider: provider_of(&self.name, &endpoint),
            bucket: env.required(&self.bucket)?.to_owned(),
            region: env
                .get(&self.region)
                .unwrap_or(self.default_region)
                .to_owned(),
            access_key_id: env.required(&self.access_key_id)?.to_owned(),
            secret_access_key: env.required(&self.secret_access_key)?.into(),
            endpoint,
            public_base_url,
            force_path_style,
        }))
    }
}

/// Endpoints and custom domains are often written without a scheme; HTTPS is meant.
fn with_scheme(var: &str, raw: &str) -> Result<Url, ConfigError> {
    let raw = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    let url = Url::parse(&raw).map_err(|e| ConfigError::invalid(var, e))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err(ConfigError::invalid(
            var,
            "expected an http(s) URL with a host",
        )),
    }
}

fn provider_of(profile: &str, endpoint: &Url) -> String {
    let host = endpoint.host_str().unwrap_or_default();
    if profile == "r2" || host.ends_with(".r2.cloudflarestorage.com") {
        "r2".into()
    } else if profile == "storj" || host.contains("storjshare.io") {
        "storj".into()
    } else {
        "s3".into()
    }
}

const GENERIC_SUFFIXES: [&str; 7] = [
    "_SECRET_ACCESS_KEY",
    "_ACCESS_KEY_ID",
    "_PUBLIC_BASE_URL",
    "_FORCE_PATH_STYLE",
    "_ENDPOINT",
    "_BUCKET",
    "_REGION",
];

/// Profile names found in `STORAGE_<NAME>_<SUFFIX>` variables.
fn generic_profile_names(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = env
        .names_with_prefix("STORAGE_")
        .filter_map(|var| {
            let rest = &var["STORAGE_".len()..];
            GENERIC_SUFFIXES
                .iter()
                .find_map(|suffix| rest.strip_suffix(suffix))
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// All configured profiles and which one commands use when they name none.
#[derive(Debug, Clone)]
pub struct StorageProfiles {
    profiles: Vec<StorageProfile>,
    default: usize,
}

impl StorageProfiles {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut sources = vec![
            ProfileVars::generic("default", "S3_"),
            ProfileVars::new("r2", "CLOUDFLARE_R2_", &R2, "auto"),
            ProfileVars::new("storj", "STORJ_", &STORJ, "us-1"),
        ];
        for name in generic_profile_names(env) {
            let lower = name.to_ascii_lowercase();
            if sources.iter().any(|s| s.name == lower) {
                return Err(ConfigError::invalid(
                    &format!("STORAGE_{name}_ENDPOINT"),
                    format!("profile {lower:?} is already defined by other variables"),
                ));
            }
            sources.push(ProfileVars::generic(&lower, &format!("STORAGE_{name}_")));
        }
        let mut profiles = Vec::new();
        for source in &sources {
            profiles.extend(source.load(env)?);
        }
        if profiles.is_empty() {
            return Err(ConfigError::Missing("S3_ENDPOINT".into()));
        }
        let default = default_index(env, &profiles)?;
        Ok(Self { profiles, default })
    }

    pub fn get(&self, name: &str) -> Option<&StorageProfile> {
        let name = name.to_ascii_lowercase();
        self.profiles.iter().find(|p| p.name == name)
    }

    pub fn default_profile(&self) -> &StorageProfile {
        &self.profiles[self.default]
    }

    pub fn iter(&self) -> impl Iterator<Item = &StorageProfile> {
        self.profiles.iter()
    }
}

fn default_index(env: &Env, profiles: &[StorageProfile]) -> Result<usize, ConfigError> {
    let position = |name: &str| profiles.iter().position(|p| p.name == name);
    match env.get("DEFAULT_STORAGE") {
        Some(name) => position(&name.to_ascii_lowercase()).ok_or_else(|| {
            ConfigError::invalid(
                "DEFAULT_STORAGE",
                format!("no storage profile named {name:?}"),
            )
        }),
        None if profiles.len() == 1 => Ok(0),
        None => position("default").ok_or_else(|| ConfigError::Missing("DEFAULT_STORAGE".into())),
    }
}
