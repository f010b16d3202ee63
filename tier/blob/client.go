package blob

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/nats-tiered/nts/tier"
)

// Backoff between retries: full jitter over an exponential ceiling that
// starts at backoffBase and doubles per attempt up to backoffMax.
const (
	backoffBase = 100 * time.Millisecond
	backoffMax  = 10 * time.Second
)

// newS3Client builds the S3 client of an s3:// store from its resolved
// options.
//
// Checksums: since service/s3 v1.73 the SDK adds a CRC32 checksum to every
// upload (over HTTPS as an aws-chunked trailer, which several S3-compatible
// servers refuse) and asks for and verifies the stored checksum on every
// download. Both are limited here to the operations whose API requires them:
//   - gofakes3 answers a ranged GET with the whole object's stored
//     x-amz-checksum-crc32, so response validation fails every GetRange
//     ("checksum did not match"); versitygw answers correctly.
//   - Uploads carry Content-MD5 instead (see contentMD5), which every
//     S3-compatible server checks, and blocks carry their own per-frame
//     checksums, which the block reader verifies on every read.
func newS3Client(ctx context.Context, o Options) (*s3.Client, error) {
	load := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer { return newRetryer(o.MaxRetries) }),
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if o.Region != "" {
		load = append(load, config.WithRegion(o.Region))
	}
	if o.AccessKey != "" {
		load = append(load, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, o.SessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	return s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		// MaxRetries decides, not AWS_MAX_ATTEMPTS.
		so.RetryMaxAttempts = 0
		if o.HTTPClient != nil {
			// Set here rather than in LoadDefaultConfig, which insists on
			// adding AWS_CA_BUNDLE's roots to the client's transport and
			// fails for a plain *http.Client: the caller's client is used
			// as it is.
			so.HTTPClient = o.HTTPClient
		}
	}), nil
}

// newRetryer returns the SDK's standard retryer (which retries throttling,
// 5xx and connection errors, and sleeps between attempts only while the
// request's context is live) making at most 1+retries attempts.
func newRetryer(retries int) aws.Retryer {
	return retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = retries + 1
		so.MaxBackoff = backoffMax
		so.Backoff = retry.BackoffDelayerFunc(backoff)
	})
}

// backoff returns the delay before retry attempt (1 for the first retry):
// uniformly random up to backoffBase·2^(attempt-1), capped at backoffMax.
func backoff(attempt int, _ error) (time.Duration, error) {
	ceiling := backoffMax
	if attempt < 20 {
		ceiling = min(backoffBase<<max(attempt-1, 0), backoffMax)
	}
	return rand.N(ceiling) + 1, nil
}

// isNotFound reports whether err says the object does not exist: NoSuchKey
// from GET, a bare 404 from HEAD. A missing bucket is not a missing object.
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		case "NoSuchBucket":
			return false
		}
	}
	return false
}

// isInvalidRange reports whether err is S3's answer to a range that starts
// past the end of the object (416 InvalidRange).
func isInvalidRange(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "InvalidRange" {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == 416
}

// wrapErr gives err the store's context: ErrNotFound for a missing object,
// and the context's error when the context ended, so errors.Is finds it
// even where the SDK reports the failed attempt instead.
func (s *s3Store) wrapErr(ctx context.Context, op, key string, err error) error {
	if err == nil {
		return nil
	}
	where := fmt.Sprintf("s3 %s s3://%s/%s", op, s.bucket, s.objectKey(key))
	if isNotFound(err) {
		return fmt.Errorf("%s: %w", where, tier.ErrNotFound)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%s: %w: %w", where, cerr, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}
