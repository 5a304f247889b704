//! Settings from the environment, through the real binaries' loaders.

use roomtape_ingestor::config::IngestorSettings;
use roomtape_processor::config::ProcessorSettings;
use roomtape_shared::config::ConfigError;
use roomtape_tests::TestEnv;

#[tokio::test]
async fn the_test_environment_configures_both_binaries() {
    let test = TestEnv::new().await;
    IngestorSettings::from_env(&test.env()).expect("ingestor");
    let processor = ProcessorSettings::from_env(&test.env()).expect("processor");
    assert_eq!(
        processor.storage.default_profile().bucket,
        test.bucket.profile.bucket
    );
}

#[tokio::test]
async fn each_required_variable_missing_stops_start_up_naming_it() {
    let test = TestEnv::new().await;
    for var in [
        "AMQP_URL",
        "DATABASE_URL",
        "LIVEKIT_URL",
        "LIVEKIT_API_SECRET",
        "S3_BUCKET",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
    ] {
        let error = ProcessorSettings::from_env(&test.env_with(&[(var, "")])).expect_err(var);
        assert_eq!(error, ConfigError::Missing(var.to_owned()), "{var}");
        assert!(error.to_string().contains(var));
    }
}
