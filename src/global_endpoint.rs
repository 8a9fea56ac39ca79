//! S3's global endpoint (`bucket.s3.amazonaws.com`) for clients in us-east-1, where botocore
//! sends requests by default (`s3.us_east_1_regional_endpoint = "legacy"`): the SDK's endpoint
//! rules know the choice (their `UseGlobalEndpoint` parameter), but the SDK has no setting for
//! it and always takes the regional endpoint. Requests would work there too, but on another
//! host than boto3's, which proxies, firewalls and VPC endpoint policies may tell apart.

use aws_sdk_s3::config::endpoint::{DefaultResolver, EndpointFuture, Params, ResolveEndpoint};

/// The SDK's endpoint rules, with `UseGlobalEndpoint` set.
#[derive(Debug, Default)]
pub struct GlobalEndpoint(DefaultResolver);

impl ResolveEndpoint for GlobalEndpoint {
    fn resolve_endpoint<'a>(&'a self, params: &'a Params) -> EndpointFuture<'a> {
        let params = with_global_endpoint(params);
        EndpointFuture::new(async move {
            match params {
                Ok(params) => self.0.resolve_endpoint(&params).await,
                Err(invalid) => Err(invalid.into()),
            }
        })
    }
}

/// `params` with `UseGlobalEndpoint` set. The SDK's parameters have no way to change one, so
/// each is copied.
fn with_global_endpoint(
    params: &Params,
) -> Result<Params, aws_sdk_s3::config::endpoint::InvalidParams> {
    let text = |value: Option<&str>| value.map(str::to_owned);
    Params::builder()
        .set_bucket(text(params.bucket()))
        .set_region(text(params.region()))
        .set_use_fips(params.use_fips())
        .set_use_dual_stack(params.use_dual_stack())
        .set_endpoint(text(params.endpoint()))
        .set_force_path_style(params.force_path_style())
        .set_accelerate(params.accelerate())
        .set_use_global_endpoint(Some(true))
        .set_use_object_lambda_endpoint(params.use_object_lambda_endpoint())
        .set_key(text(params.key()))
        .set_prefix(text(params.prefix()))
        .set_copy_source(text(params.copy_source()))
        .set_disable_access_points(params.disable_access_points())
        .set_disable_multi_region_access_points(params.disable_multi_region_access_points())
        .set_use_arn_region(params.use_arn_region())
        .set_use_s3_express_control_endpoint(params.use_s3_express_control_endpoint())
        .set_disable_s3_express_session_auth(params.disable_s3_express_session_auth())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every parameter set to other than its default survives the copy: only
    /// `UseGlobalEndpoint` differs (a parameter the copy missed would show in the comparison).
    #[test]
    fn the_copy_changes_only_use_global_endpoint() {
        let original = Params::builder()
            .bucket("bucket")
            .region("us-east-1")
            .use_fips(true)
            .use_dual_stack(true)
            .endpoint("https://example.com")
            .force_path_style(true)
            .accelerate(true)
            .use_global_endpoint(false)
            .use_object_lambda_endpoint(true)
            .key("key")
            .prefix("prefix")
            .copy_source("source/key")
            .disable_access_points(true)
            .disable_multi_region_access_points(true)
            .use_arn_region(false)
            .use_s3_express_control_endpoint(true)
            .disable_s3_express_session_auth(true)
            .build()
            .expect("valid parameters");
        let copy = with_global_endpoint(&original).expect("valid parameters");
        assert_eq!(copy.use_global_endpoint(), Some(true));
        let as_original =
            format!("{copy:?}").replace("use_global_endpoint: true", "use_global_endpoint: false");
        assert_eq!(as_original, format!("{original:?}"));
    }

    #[tokio::test]
    async fn us_east_1_goes_to_the_global_endpoint_other_regions_to_their_own() {
        let resolve = |region: &str| {
            let params = Params::builder()
                .bucket("my-bucket")
                .region(region)
                .use_fips(false)
                .use_dual_stack(false)
                .accelerate(false)
                .force_path_style(false)
                .build()
                .expect("valid parameters");
            async move { GlobalEndpoint::default().resolve_endpoint(&params).await }
        };
        let url = |endpoint: aws_smithy_types::endpoint::Endpoint| endpoint.url().to_owned();
        assert_eq!(
            url(resolve("us-east-1").await.expect("an endpoint")),
            "https://my-bucket.s3.amazonaws.com"
        );
        assert_eq!(
            url(resolve("eu-west-1").await.expect("an endpoint")),
            "https://my-bucket.s3.eu-west-1.amazonaws.com"
        );
    }
}
