//! Bearer tokens, of two kinds: the static tokens of `API_TOKENS` and, unless turned off, the
//! LiveKit access tokens apps already mint for their users (HS256, signed with a configured
//! LiveKit key pair). A handler asks for one extractor:
//!
//! - [`Caller`]: either kind; the handler then checks its action with [`Caller::check`] or
//!   narrows a list with [`Caller::narrow`] (the rules are in [`crate::grants`]);
//! - [`ReadAccess`] / [`WriteAccess`]: static tokens only (a LiveKit token is 403), of scope
//!   read or write; a route that must not take LiveKit tokens asks for one of these.
//!
//! A missing, unknown, bad, expired or unknown-key token is 401. Static tokens are compared in
//! constant time (their SHA-256, so lengths leak nothing either); no token is ever logged.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use roomtape_shared::clock::Clock;
use roomtape_shared::db::recordings::Status;
use roomtape_shared::token::TokenVerifier;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ApiToken, LiveKitTokens, Scope};
use crate::error::ApiError;
use crate::grants::{Action, Denied, ListFilter, Permissions, VideoGrant};

/// The tokens of `API_TOKENS`, kept as digests.
#[derive(Clone)]
struct Tokens(Vec<(String, Scope, [u8; 32])>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, scope, _)| (name, scope)))
            .finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Tokens {
    fn new(tokens: &[ApiToken]) -> Self {
        Self(
            tokens
                .iter()
                .map(|t| {
                    let hash = digest(t.token.expose_secret().as_bytes());
                    (t.name.clone(), t.scope, hash)
                })
                .collect(),
        )
    }

    /// The name and scope of `presented`; every token is compared, whichever matches.
    fn find(&self, presented: &[u8]) -> Option<(&str, Scope)> {
        let presented = digest(presented);
        let mut found = None;
        for (name, scope, hash) in &self.0 {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some((name.as_str(), *scope));
            }
        }
        found
    }
}

/// Who may call: the static tokens and, when accepted, the LiveKit keys that sign access
/// tokens.
#[derive(Debug)]
pub struct Authenticator {
    tokens: Tokens,
    livekit: Option<TokenVerifier>,
    join_reads: bool,
}

/// The claims of a LiveKit access token roomtape reads (livekit/protocol `auth.ClaimGrants`).
#[derive(Deserialize)]
struct AccessClaims {
    /// The participant's identity.
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    video: Option<VideoGrant>,
}

impl Authenticator {
    pub fn new(tokens: &[ApiToken], livekit: &LiveKitTokens, clock: Clock) -> Self {
        Self {
            tokens: Tokens::new(tokens),
            livekit: livekit
                .keys
                .as_ref()
                .map(|keys| TokenVerifier::new(keys, clock)),
            join_reads: livekit.join_reads,
        }
    }

    /// Who presented the request's bearer token.
    fn authenticate(&self, request: &HttpRequest) -> Result<Caller, ApiError> {
        let value = request
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::MissingToken)?;
        let token = value
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .ok_or(ApiError::UnknownToken)?;
        if let Some((name, scope)) = self.tokens.find(token) {
            return Ok(Caller {
                kind: Kind::Static,
                identity: Some(name.to_owned()),
                permissions: Permissions::Static(scope),
            });
        }
        match (&self.livekit, std::str::from_utf8(token)) {
            // A JWT has three parts; anything else was meant as a static token.
            (Some(verifier), Ok(jwt)) if jwt.matches('.').count() == 2 => {
                self.livekit(verifier, jwt)
            }
            _ => Err(ApiError::UnknownToken),
        }
    }

    fn livekit(&self, verifier: &TokenVerifier, jwt: &str) -> Result<Caller, ApiError> {
        // The claims are at most three quarters of the token's length.
        let mut claims_buf = vec![0; jwt.len()];
        let verified = verifier
            .verify(jwt, &mut claims_buf)
            .map_err(ApiError::LiveKitToken)?;
        let claims: AccessClaims = serde_json::from_slice(verified.claims)
            .map_err(|e| ApiError::LiveKitClaims(e.to_string()))?;
        Ok(Caller {
            kind: Kind::LiveKit,
            identity: claims.sub.filter(|s| !s.is_empty()),
            permissions: Permissions::LiveKit {
                grant: claims.video.unwrap_or_default(),
                join_reads: self.join_reads,
            },
        })
    }
}

/// Which kind of token a request came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One of `API_TOKENS`.
    Static,
    /// A LiveKit access token.
    LiveKit,
}

/// The authenticated caller of a request, of either kind.
#[derive(Debug, Clone)]
pub struct Caller {
    pub kind: Kind,
    /// The static token's name, or the LiveKit token's `sub` (a participant identity).
    pub identity: Option<String>,
    pub permissions: Permissions,
}

impl Caller {
    /// `Ok` when the caller may do `action`, else 403 naming what is missing.
    pub fn check(&self, action: Action<'_>) -> Result<(), ApiError> {
        Ok(self.permissions.check(action)?)
    }

    /// A list's room and status narrowed to what the caller may read ([`Permissions::narrow`]).
    pub fn narrow(
        &self,
        room: Option<&str>,
        status: Option<Status>,
    ) -> Result<Option<ListFilter>, ApiError> {
        Ok(self.permissions.narrow(room, status)?)
    }

    /// Who sent a command, kept with it and shown on the recording it starts (`requested_by`).
    pub fn requested_by(&self) -> Value {
        json!({"kind": self.kind, "identity": self.identity})
    }

    /// For logs: who, never the token.
    pub fn name(&self) -> &str {
        self.identity.as_deref().unwrap_or("(no identity)")
    }
}

fn authenticator(request: &HttpRequest) -> Result<&Authenticator, ApiError> {
    request
        .app_data::<web::Data<Authenticator>>()
        .map(|data| data.get_ref())
        .ok_or(ApiError::UnknownToken)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticator(request).and_then(|a| a.authenticate(request)))
    }
}

/// A static token's name and scope; a LiveKit token is refused (403).
fn static_token(request: &HttpRequest) -> Result<(String, Scope), ApiError> {
    let caller = authenticator(request).and_then(|a| a.authenticate(request))?;
    match (caller.permissions, caller.identity) {
        (Permissions::Static(scope), Some(name)) => Ok((name, scope)),
        _ => Err(Denied::StaticOnly.into()),
    }
}

/// A request made with a static read or write token (`API_TOKENS` only).
#[derive(Debug, Clone)]
pub struct ReadAccess {
    pub token_name: String,
}

/// A request made with a static write token (`API_TOKENS` only).
#[derive(Debug, Clone)]
pub struct WriteAccess {
    pub token_name: String,
}

impl FromRequest for ReadAccess {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(static_token(request).map(|(token_name, _)| Self { token_name }))
    }
}

impl FromRequest for WriteAccess {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            static_token(request).and_then(|(token_name, scope)| match scope {
                Scope::Write => Ok(Self { token_name }),
                Scope::Read => Err(Denied::ReadOnly.into()),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use roomtape_shared::config::ApiKeys;
    use roomtape_shared::token::TokenError;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;
    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    fn authenticator(livekit: bool) -> Authenticator {
        let tokens = [
            ApiToken {
                name: "ci".into(),
                token: "r-token".into(),
                scope: Scope::Read,
            },
            ApiToken {
                name: "ops".into(),
                token: "w-token".into(),
                scope: Scope::Write,
            },
        ];
        let keys = ApiKeys::new([("APIapp".to_owned(), "app-secret".into())]);
        let livekit = LiveKitTokens {
            keys: livekit.then_some(keys),
            join_reads: true,
        };
        Authenticator::new(&tokens, &livekit, Clock::FixedUnix(NOW))
    }

    fn with(header: Option<&str>) -> HttpRequest {
        let mut request = TestRequest::default();
        if let Some(value) = header {
            request = request.insert_header((header::AUTHORIZATION, value));
        }
        request.to_http_request()
    }

    fn bearer(token: &str) -> HttpRequest {
        with(Some(&format!("Bearer {token}")))
    }

    /// A token over `claims` with `header`, signed with `secret` (HMAC-SHA256 whatever the
    /// header says).
    fn jwt(header: &str, claims: &Value, secret: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any length");
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    fn claims(video: Value) -> Value {
        json!({"iss": "APIapp", "sub": "alice", "nbf": 0, "exp": NOW + 3600, "video": video})
    }

    #[test]
    fn static_tokens_name_their_scope_and_nothing_else_passes() {
        let authenticator = authenticator(true);
        let caller = authenticator
            .authenticate(&bearer("w-token"))
            .expect("write token");
        assert_eq!(caller.identity.as_deref(), Some("ops"));
        assert_eq!(caller.permissions, Permissions::Static(Scope::Write));
        let caller = authenticator
            .authenticate(&bearer("r-token"))
            .expect("read token");
        assert_eq!(
            (caller.kind, caller.permissions),
            (Kind::Static, Permissions::Static(Scope::Read))
        );
        for header in [Some("Bearer nope"), Some("r-token"), Some("Bearer "), None] {
            assert!(
                authenticator.authenticate(&with(header)).is_err(),
                "{header:?}"
            );
        }
        assert!(!format!("{:?}", authenticator.tokens).contains("token"));
    }

    #[test]
    fn a_livekit_token_carries_its_identity_and_video_grant() {
        let token = jwt(
            HS256,
            &claims(json!({"roomJoin": true, "room": "r1"})),
            "app-secret",
        );
        let caller = authenticator(true)
            .authenticate(&bearer(&token))
            .expect("valid");
        assert_eq!(caller.kind, Kind::LiveKit);
        assert_eq!(caller.identity.as_deref(), Some("alice"));
        assert_eq!(caller.permissions.room(), Some("r1"));
        assert_eq!(
            caller.requested_by(),
            json!({"kind": "livekit", "identity": "alice"})
        );
        // Turned off (or no key configured): not a token at all.
        assert!(matches!(
            authenticator(false).authenticate(&bearer(&token)),
            Err(ApiError::UnknownToken)
        ));
    }

    #[test]
    fn a_livekit_token_without_a_video_grant_may_do_nothing() {
        let mut no_video = claims(json!({}));
        no_video.as_object_mut().expect("object").remove("video");
        let caller = authenticator(true)
            .authenticate(&bearer(&jwt(HS256, &no_video, "app-secret")))
            .expect("a valid token");
        let denied = caller.check(Action::ListRooms).expect_err("no grant");
        assert_eq!(
            denied.to_string(),
            "listing the rooms needs a LiveKit token with the video grant roomList"
        );
        assert!(caller.permissions.can().is_empty());
    }

    /// Every bad LiveKit token is 401 with its reason.
    #[test]
    fn every_bad_livekit_token_is_refused_with_its_reason() {
        let good = claims(json!({"roomRecord": true}));
        let mut wrong_iss = good.clone();
        wrong_iss["iss"] = json!("APIother");
        let mut expired = good.clone();
        expired["exp"] = json!(NOW - 61);
        let mut early = good.clone();
        early["nbf"] = json!(NOW + 61);
        let mut no_exp = good.clone();
        no_exp.as_object_mut().expect("object").remove("exp");
        let unsigned = {
            let token = jwt(r#"{"alg":"none"}"#, &good, "");
            format!("{}.", token.rsplit_once('.').expect("three parts").0)
        };
        let cases = [
            ("a.b.c".to_owned(), "token is not a JWT"),
            (unsigned, "token algorithm is not HS256"),
            (
                jwt(r#"{"alg":"HS512","typ":"JWT"}"#, &good, "app-secret"),
                "token algorithm is not HS256",
            ),
            (
                jwt(HS256, &wrong_iss, "app-secret"),
                "token is signed with an unknown API key",
            ),
            (
                jwt(HS256, &good, "another-secret"),
                "token signature does not verify",
            ),
            (jwt(HS256, &expired, "app-secret"), "token has expired"),
            (jwt(HS256, &early, "app-secret"), "token is not valid yet"),
            (jwt(HS256, &no_exp, "app-secret"), "token has no exp claim"),
        ];
        let authenticator = authenticator(true);
        for (token, reason) in cases {
            let error = authenticator
                .authenticate(&bearer(&token))
                .expect_err(reason);
            assert!(
                matches!(error, ApiError::LiveKitToken(_)),
                "{reason}: {error:?}"
            );
            assert_eq!(
                error.to_string(),
                format!("LiveKit token refused: {reason}")
            );
        }
        let bad_grant = jwt(HS256, &claims(json!({"roomJoin": "yes"})), "app-secret");
        let error = authenticator
            .authenticate(&bearer(&bad_grant))
            .expect_err("grant of the wrong shape");
        assert!(
            error
                .to_string()
                .starts_with("LiveKit token refused: its claims are not LiveKit's: "),
            "{error}"
        );
        assert_eq!(TokenError::Expired.reason(), "expired");
    }

    #[test]
    fn static_only_routes_refuse_livekit_tokens() {
        let authenticator = web::Data::new(authenticator(true));
        let token = jwt(HS256, &claims(json!({"roomRecord": true})), "app-secret");
        let request = TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .app_data(authenticator.clone())
            .to_http_request();
        let refused = static_token(&request).expect_err("a LiveKit token");
        assert_eq!(
            refused.to_string(),
            "this route takes API_TOKENS tokens only, not LiveKit access tokens"
        );
        let request = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer r-token"))
            .app_data(authenticator)
            .to_http_request();
        assert_eq!(
            static_token(&request).ok(),
            Some(("ci".to_owned(), Scope::Read))
        );
    }
}
