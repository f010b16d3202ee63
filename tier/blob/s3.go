package blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/nats-tiered/nts/tier"
)

// maxPrealloc bounds the buffer allocated up front from a response's
// Content-Length; larger bodies grow as they arrive, so a wrong length
// cannot make one huge allocation.
const maxPrealloc = 256 << 20

// statRangeAbove is the range length above which GetRange checks the range
// against the object's size before the GET.
const statRangeAbove = 64 << 20

// abortTimeout bounds the request that aborts a failed multipart upload,
// which runs even when the upload's context has ended.
const abortTimeout = 30 * time.Second

// s3Store is the backend of an s3:// Blob. Keys reaching it are valid.
type s3Store struct {
	client       *s3.Client
	bucket       string
	prefix       string // no leading or trailing '/'; may be empty
	storageClass types.StorageClass
	partSize     int64
}

// openS3 builds the client and checks the bucket answers.
func openS3(ctx context.Context, cfg Config) (*s3Store, error) {
	client, err := newS3Client(ctx, cfg.Options)
	if err != nil {
		return nil, err
	}
	s := &s3Store{
		client:       client,
		bucket:       cfg.Bucket,
		prefix:       cfg.Prefix,
		storageClass: types.StorageClass(cfg.Options.StorageClass),
		partSize:     cfg.Options.PartSize,
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w: %w", cerr, err)
		}
		return nil, fmt.Errorf("bucket %q: %w", s.bucket, err)
	}
	return s, nil
}

// objectKey returns the object key of a tier key.
func (s *s3Store) objectKey(key string) string {
	if s.prefix == "" {
		return key
	}
	return s.prefix + "/" + key
}

// Put uploads blk in one PutObject, or in parts when it is larger than the
// part size.
func (s *s3Store) Put(ctx context.Context, key string, blk []byte) error {
	if int64(len(blk)) > s.partSize {
		return s.wrapErr(ctx, "put", key, s.putMultipart(ctx, key, blk))
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.objectKey(key)),
		Body:          bytes.NewReader(blk),
		ContentLength: aws.Int64(int64(len(blk))),
		ContentMD5:    contentMD5(blk),
		ContentType:   aws.String("application/octet-stream"),
		StorageClass:  s.storageClass,
	})
	return s.wrapErr(ctx, "put", key, err)
}

// putMultipart uploads blk in parts of s.partSize, one after another, and
// aborts the upload if any step fails, so no parts are left billed.
func (s *s3Store) putMultipart(ctx context.Context, key string, blk []byte) (err error) {
	size := int64(len(blk))
	parts := (size + s.partSize - 1) / s.partSize
	if parts > maxParts {
		return fmt.Errorf("%d bytes need %d parts of %d bytes, over S3's %d: raise part_size", size, parts, s.partSize, maxParts)
	}
	okey := s.objectKey(key)
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:       aws.String(s.bucket),
		Key:          aws.String(okey),
		ContentType:  aws.String("application/octet-stream"),
		StorageClass: s.storageClass,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket:   aws.String(s.bucket),
			Key:      aws.String(okey),
			UploadId: created.UploadId,
		})
		if aerr != nil {
			err = errors.Join(err, fmt.Errorf("aborting upload %s: %w", aws.ToString(created.UploadId), aerr))
		}
	}()
	done := make([]types.CompletedPart, 0, parts)
	for i := int64(0); i < parts; i++ {
		part := blk[i*s.partSize : min((i+1)*s.partSize, size)]
		num := aws.Int32(int32(i + 1))
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:        aws.String(s.bucket),
			Key:           aws.String(okey),
			UploadId:      created.UploadId,
			PartNumber:    num,
			Body:          bytes.NewReader(part),
			ContentLength: aws.Int64(int64(len(part))),
			ContentMD5:    contentMD5(part),
		})
		if err != nil {
			return fmt.Errorf("part %d of %d: %w", i+1, parts, err)
		}
		done = append(done, types.CompletedPart{ETag: out.ETag, PartNumber: num})
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(okey),
		UploadId:        created.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	})
	return err
}

// contentMD5 returns the Content-MD5 header of b. Every S3-compatible server
// checks it and refuses a body that does not match (BadDigest), whatever the
// transport, so an upload corrupted on the way is never stored.
func contentMD5(b []byte) *string {
	sum := md5.Sum(b)
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}

// Get downloads the whole object.
func (s *s3Store) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.objectKey(key)),
	})
	if err != nil {
		return nil, s.wrapErr(ctx, "get", key, err)
	}
	defer out.Body.Close()
	buf, err := readBody(out.Body, out.ContentLength)
	return buf, s.wrapErr(ctx, "get", key, err)
}

// readBody reads a response body of the given length (nil if unknown) and
// checks it has exactly that many bytes.
func readBody(body io.Reader, length *int64) ([]byte, error) {
	if length == nil || *length < 0 || *length > maxPrealloc {
		buf, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		if length != nil && *length >= 0 && int64(len(buf)) != *length {
			return nil, fmt.Errorf("body has %d bytes, Content-Length says %d", len(buf), *length)
		}
		return buf, nil
	}
	buf := make([]byte, *length)
	if n, err := io.ReadFull(body, buf); err != nil {
		return nil, fmt.Errorf("body ended after %d of %d bytes: %w", n, len(buf), err)
	}
	// Reading on to the end lets the SDK report errors it only finds
	// there, and shows whether the body is longer than it said.
	switch n, err := io.ReadFull(body, make([]byte, 1)); {
	case n != 0:
		return nil, fmt.Errorf("body longer than its Content-Length %d", len(buf))
	case err != io.EOF:
		return nil, err
	}
	return buf, nil
}

// GetRange downloads n bytes at off with a ranged GET and checks the server
// returned exactly that range. An empty range, or one longer than
// statRangeAbove, is first checked against the object's size from Stat: the
// first cannot be asked for in a GET, and a huge length is refused without
// asking the server (gofakes3 drops the connection on ranges that end near
// 2^63).
func (s *s3Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if n == 0 || n > statRangeAbove {
		info, err := s.Stat(ctx, key)
		if err != nil {
			return nil, err
		}
		if off > info.Size || n > info.Size-off {
			return nil, s.wrapErr(ctx, "get range", key, fmt.Errorf("range %d+%d runs past the end of a %d-byte object", off, n, info.Size))
		}
		if n == 0 {
			return []byte{}, nil
		}
	}
	if off > math.MaxInt64-n {
		return nil, s.wrapErr(ctx, "get range", key, fmt.Errorf("range %d+%d runs past the end of any object", off, n))
	}
	last := off + n - 1
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.objectKey(key)),
		Range:  aws.String("bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(last, 10)),
	})
	if isInvalidRange(err) {
		return nil, s.wrapErr(ctx, "get range", key, fmt.Errorf("range %d+%d runs past the end of the object", off, n))
	}
	if err != nil {
		return nil, s.wrapErr(ctx, "get range", key, err)
	}
	defer out.Body.Close()
	if err := checkContentRange(out, off, last); err != nil {
		return nil, s.wrapErr(ctx, "get range", key, err)
	}
	buf, err := readBody(out.Body, &n)
	return buf, s.wrapErr(ctx, "get range", key, err)
}

// checkContentRange checks a ranged GET's response is bytes off..last,
// which also catches a range cut short by the end of the object.
func checkContentRange(out *s3.GetObjectOutput, off, last int64) error {
	n := last - off + 1
	if cl := aws.ToInt64(out.ContentLength); out.ContentLength != nil && cl != n {
		return fmt.Errorf("range %d+%d runs past the end of the object (server returned %d bytes)", off, n, cl)
	}
	cr := aws.ToString(out.ContentRange)
	if cr == "" {
		// A server may answer a range that covers the whole object with
		// the whole object; anything else is not the range asked for.
		if off == 0 && out.ContentLength != nil {
			return nil
		}
		return fmt.Errorf("server ignored the range %d-%d", off, last)
	}
	spec, ok := strings.CutPrefix(cr, "bytes ")
	if ok {
		spec, _, ok = strings.Cut(spec, "/")
	}
	var first, end int64
	if ok {
		a, b, found := strings.Cut(spec, "-")
		var err1, err2 error
		first, err1 = strconv.ParseInt(a, 10, 64)
		end, err2 = strconv.ParseInt(b, 10, 64)
		ok = found && err1 == nil && err2 == nil
	}
	if !ok || first != off || end != last {
		return fmt.Errorf("asked for bytes %d-%d, server returned Content-Range %q", off, last, cr)
	}
	return nil
}

// Stat reads the object's size and modification time with HeadObject.
func (s *s3Store) Stat(ctx context.Context, key string) (tier.Info, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.objectKey(key)),
	})
	if err != nil {
		return tier.Info{}, s.wrapErr(ctx, "stat", key, err)
	}
	return tier.Info{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Delete deletes the object; S3 answers success for a missing key, and a
// server that answers NoSuchKey is treated the same way.
func (s *s3Store) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.objectKey(key)),
	})
	if err != nil && isNotFound(err) {
		return nil
	}
	return s.wrapErr(ctx, "delete", key, err)
}

// List pages through ListObjectsV2 under the store's prefix and returns the
// objects whose keys begin with prefix, with the store's prefix removed.
// Objects whose names are not valid keys (such as directory markers) are
// left out: no Tier call could address them.
func (s *s3Store) List(ctx context.Context, prefix string) ([]tier.Info, error) {
	strip := ""
	if s.prefix != "" {
		strip = s.prefix + "/"
	}
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(strip + prefix),
	})
	var out []tier.Info
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.wrapErr(ctx, "list", prefix, err)
		}
		for _, obj := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(obj.Key), strip)
			if !ok || !strings.HasPrefix(key, prefix) || tier.ValidateKey(key) != nil {
				continue
			}
			out = append(out, tier.Info{Key: key, Size: aws.ToInt64(obj.Size), ModTime: aws.ToTime(obj.LastModified)})
		}
	}
	slices.SortFunc(out, func(a, b tier.Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}
