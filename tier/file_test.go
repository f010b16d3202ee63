package tier_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-tiered/nts/tier"
	"github.com/nats-tiered/nts/tier/tiertest"
)

func TestFileConformance(t *testing.T) {
	tiertest.Run(t, func(t *testing.T) tier.Tier { return newFile(t, t.TempDir()) })
}

// newFile opens a File store on dir or fails the test.
func newFile(t testing.TB, dir string) *tier.File {
	t.Helper()
	f, err := tier.NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tempFiles returns the temporary files anywhere under dir.
func tempFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tier.TempPrefix) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFileLayout(t *testing.T) {
	dir := t.TempDir()
	f := newFile(t, dir)
	key, err := tier.Key("ORDERS", 1, 99)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{key: "block", "x/y/z": "deep"} {
		if err := f.Put(t.Context(), k, []byte(v)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(k)))
		if err != nil || string(got) != v {
			t.Fatalf("file for %q holds %q, %v; want %q", k, got, err, v)
		}
	}
	if want := filepath.Join(dir, "ORDERS", "00000000000000000001-00000000000000000099.blk"); filepath.Join(dir, filepath.FromSlash(key)) != want {
		t.Fatalf("key %q is not stored at %s", key, want)
	}
	if f.Dir() != dir {
		t.Fatalf("Dir() = %q, want %q", f.Dir(), dir)
	}
	if len(tempFiles(t, dir)) != 0 {
		t.Fatalf("temporary files left: %q", tempFiles(t, dir))
	}
}

// TestFilePutFailureRemovesTemp makes the rename of a finished temporary file
// fail and checks the temporary file is gone and nothing else changed.
func TestFilePutFailureRemovesTemp(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		key   string
	}{
		{
			// A non-empty directory where the object's file would go.
			name: "rename over a directory",
			setup: func(t *testing.T, dir string) {
				if err := os.MkdirAll(filepath.Join(dir, "S", "x.blk", "sub"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			key: "S/x.blk",
		},
		{
			// An object where the stream's directory would go.
			name: "stream is a file",
			setup: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, "S"), []byte("obj"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			key: "S/x.blk",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFile(t, dir)
			c.setup(t, dir)
			before, err := f.List(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Put(t.Context(), c.key, []byte("data")); err == nil {
				t.Fatal("Put succeeded, want an error")
			}
			if tmp := tempFiles(t, dir); len(tmp) != 0 {
				t.Fatalf("temporary files left after a failed Put: %q", tmp)
			}
			after, err := f.List(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(before, after) {
				t.Fatalf("List changed by a failed Put: %v, then %v", before, after)
			}
		})
	}
}

// TestFileRemovesLeftovers checks NewFile deletes temporary files a crash
// left behind (unmodified for StaleTemp), keeps objects and a temporary
// file another store on the directory may be writing, and List never shows
// temporary files.
func TestFileRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * tier.StaleTemp)
	for path, data := range map[string]string{
		"S/00000000000000000001-00000000000000000002.blk": "kept",
		"S/" + tier.TempPrefix + "12345":                  "partial",
		tier.TempPrefix + "9":                             "partial",
		"a/b/" + tier.TempPrefix + "x":                    "partial",
		"S/" + tier.TempPrefix + "young":                  "writing",
	} {
		p := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if data == "partial" {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	f := newFile(t, dir)
	tmp := tempFiles(t, dir)
	if len(tmp) != 1 || filepath.Base(tmp[0]) != tier.TempPrefix+"young" {
		t.Fatalf("NewFile left temporary files %q, want the young one only", tmp)
	}
	minuteAgo := time.Now().Add(-time.Minute)
	if err := os.Chtimes(tmp[0], minuteAgo, minuteAgo); err != nil {
		t.Fatal(err)
	}
	if n, err := f.RemoveTemp(time.Second); err != nil || n != 1 || len(tempFiles(t, dir)) != 0 {
		t.Fatalf("RemoveTemp(1s) of a file a minute old: %d removed, %v", n, err)
	}
	infos, err := f.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Key != "S/00000000000000000001-00000000000000000002.blk" || infos[0].Size != 4 {
		t.Fatalf("List = %+v, want only the kept object", infos)
	}

	// A write in progress (a temporary file created after NewFile) is not
	// listed and cannot be read as a key.
	if err := os.WriteFile(filepath.Join(dir, "S", tier.TempPrefix+"77"), []byte("busy"), 0o644); err != nil {
		t.Fatal(err)
	}
	infos, err = f.List(t.Context(), "S/")
	if err != nil || len(infos) != 1 {
		t.Fatalf("List(S/) = %+v, %v; want only the kept object", infos, err)
	}
	if _, err := f.Get(t.Context(), "S/"+tier.TempPrefix+"77"); !errors.Is(err, tier.ErrInvalidKey) {
		t.Fatalf("Get of a temporary file's name: %v, want ErrInvalidKey", err)
	}
}

func TestNewFileErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"", file, filepath.Join(file, "sub")} {
		if _, err := tier.NewFile(dir); err == nil {
			t.Errorf("NewFile(%q) succeeded, want an error", dir)
		}
	}
}

func TestFileRelativeDir(t *testing.T) {
	t.Chdir(t.TempDir())
	f := newFile(t, "data")
	if !filepath.IsAbs(f.Dir()) {
		t.Fatalf("Dir() = %q, want an absolute path", f.Dir())
	}
	if err := f.Put(t.Context(), "S/k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// The store keeps working after the working directory changes.
	t.Chdir(t.TempDir())
	if got, err := f.Get(t.Context(), "S/k"); err != nil || string(got) != "v" {
		t.Fatalf("Get after chdir = %q, %v", got, err)
	}
}
