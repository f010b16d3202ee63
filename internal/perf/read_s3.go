package perf

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/nats-tiered/nts/index"
	"github.com/nats-tiered/nts/tier/blob"
)

// RangedGets returns a Probe that makes one ranged GET straight to the S3
// server of blobURL (an s3:// URL as the blob tier takes it, with opts as
// the tier's options) with aws-sdk-go-v2, outside nts: n bytes at a random
// offset (seeded by seed) of the object of a random block of blocks, read
// to the end and checked for length. With n 0 each GET is as long as a
// stored frame of its block on average (its size over its frames): the one
// GET a point read from the blob tier needs once the block's footer is
// known. It is the reference for point reads from the blob tier.
func RangedGets(ctx context.Context, blobURL string, opts blob.Options, blocks []index.BlockMeta, n int64, seed uint64) (Probe, error) {
	cfg, err := blob.ParseURL(blobURL, opts)
	if err != nil {
		return nil, err
	}
	if cfg.Scheme != blob.SchemeS3 {
		return nil, fmt.Errorf("perf: ranged GETs need an s3:// URL, not %s", cfg)
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("perf: ranged GETs over no blocks")
	}
	var longest int64
	for _, b := range blocks {
		size := rangedGetSize(b, n)
		if size < 1 || size > b.Size {
			return nil, fmt.Errorf("perf: a ranged GET of %d bytes of block %s of %d bytes in %d frames", size, b.Key, b.Size, b.Frames)
		}
		longest = max(longest, size)
	}
	cl, err := rangedGetClient(ctx, cfg.Options)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, longest)
	rng := rand.New(rand.NewPCG(seed, uint64(len(blocks))))
	return func(ctx context.Context) error {
		b := blocks[rng.IntN(len(blocks))]
		size := rangedGetSize(b, n)
		off := rng.Int64N(b.Size - size + 1)
		key := b.Key
		if cfg.Prefix != "" {
			key = cfg.Prefix + "/" + key
		}
		out, err := cl.GetObject(ctx, &s3.GetObjectInput{
			Bucket: aws.String(cfg.Bucket),
			Key:    aws.String(key),
			Range:  aws.String("bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+size-1, 10)),
		})
		if err != nil {
			return fmt.Errorf("s3 get s3://%s/%s bytes %d+%d: %w", cfg.Bucket, key, off, size, err)
		}
		defer out.Body.Close()
		got, err := io.ReadFull(out.Body, buf[:size])
		if err == nil {
			var rest int64
			rest, err = io.Copy(io.Discard, out.Body)
			got += int(rest)
		}
		if err != nil || int64(got) != size {
			return fmt.Errorf("%w: s3 get s3://%s/%s bytes %d+%d: %d bytes (%v)", ErrCheck, cfg.Bucket, key, off, size, got, err)
		}
		return nil
	}, nil
}

// rangedGetSize is the length of a ranged GET of block b: n, or b's mean
// stored frame size when n is 0.
func rangedGetSize(b index.BlockMeta, n int64) int64 {
	if n != 0 || b.Frames < 1 {
		return n
	}
	return b.Size / int64(b.Frames)
}

// rangedGetClient builds an S3 client of the resolved blob options o: its
// endpoint, region, addressing and credentials (the AWS default chain
// without static keys), no retries, checksums only where the API needs
// them (as the blob tier asks).
func rangedGetClient(ctx context.Context, o blob.Options) (*s3.Client, error) {
	load := []func(*config.LoadOptions) error{
		config.WithRetryMaxAttempts(1),
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
	awsCfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = blob.DefaultRegion
	}
	return s3.NewFromConfig(awsCfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		if o.HTTPClient != nil {
			so.HTTPClient = o.HTTPClient
		}
	}), nil
}
