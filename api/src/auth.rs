//! Bearer tokens: `ReadAccess` and `WriteAccess` are extractors a handler asks for; a missing
//! or unknown token is 401, a read token where writing is needed 403. Tokens are compared in
//! constant time (their SHA-256, so lengths leak nothing either) and never logged.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ApiToken, Scope};
use crate::error::ApiError;

/// The tokens of `API_TOKENS`, kept as digests.
#[derive(Clone)]
pub struct Tokens(Vec<(String, Scope, [u8; 32])>);

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
    pub fn new(tokens: &[ApiToken]) -> Self {
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

    /// The scope of the request's bearer token.
    fn authenticate(&self, request: &HttpRequest) -> Result<(String, Scope), ApiError> {
        let value = request
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::MissingToken)?;
        let token = value
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .ok_or(ApiError::UnknownToken)?;
        let (name, scope) = self.find(token).ok_or(ApiError::UnknownToken)?;
        Ok((name.to_owned(), scope))
    }
}

fn tokens(request: &HttpRequest) -> Result<&Tokens, ApiError> {
    request
        .app_data::<web::Data<Tokens>>()
        .map(|data| data.get_ref())
        .ok_or(ApiError::UnknownToken)
}

/// A request made with a read or write token.
#[derive(Debug, Clone)]
pub struct ReadAccess {
    pub token_name: String,
}

/// A request made with a write token.
#[derive(Debug, Clone)]
pub struct WriteAccess {
    pub token_name: String,
}

impl FromRequest for ReadAccess {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            tokens(request)
                .and_then(|t| t.authenticate(request))
                .map(|(token_name, _)| Self { token_name }),
        )
    }
}

impl FromRequest for WriteAccess {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            tokens(request)
                .and_then(|t| t.authenticate(request))
                .and_then(|(token_name, scope)| match scope {
                    Scope::Write => Ok(Self { token_name }),
                    Scope::Read => Err(ApiError::ReadOnlyToken),
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn tokens() -> Tokens {
        Tokens::new(&[
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
        ])
    }

    fn with(header: Option<&str>) -> HttpRequest {
        let mut request = TestRequest::default();
        if let Some(value) = header {
            request = request.insert_header((header::AUTHORIZATION, value));
        }
        request.to_http_request()
    }

    #[test]
    fn tokens_name_their_scope_and_nothing_else_passes() {
        let tokens = tokens();
        assert_eq!(
            tokens.authenticate(&with(Some("Bearer w-token"))).ok(),
            Some(("ops".to_owned(), Scope::Write))
        );
        assert_eq!(
            tokens.authenticate(&with(Some("Bearer r-token"))).ok(),
            Some(("ci".to_owned(), Scope::Read))
        );
        for header in [Some("Bearer nope"), Some("r-token"), Some("Bearer "), None] {
            assert!(tokens.authenticate(&with(header)).is_err(), "{header:?}");
        }
        assert!(!format!("{tokens:?}").contains("token"));
    }
}
