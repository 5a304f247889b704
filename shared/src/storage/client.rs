//! S3 clients for storage profiles, set up the way R2 and Storj accept.

use std::time::Duration;

use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use secrecy::ExposeSecret;

use crate::config::StorageProfile;

/// A client for `profile`'s endpoint. Checksums are computed and validated only when an
/// operation requires them: R2 and Storj reject the CRC headers newer SDKs add by default.
pub fn client(profile: &StorageProfile) -> aws_sdk_s3::Client {
    let credentials = Credentials::new(
        profile.access_key_id.clone(),
        profile.secret_access_key.expose_secret().to_owned(),
        None,
        None,
        "roomtape-storage-profile",
    );
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(profile.region.clone()))
        .endpoint_url(profile.endpoint.as_str().trim_end_matches('/'))
        .force_path_style(profile.force_path_style)
        .credentials_provider(credentials)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(15))
                .build(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
