// Package tools builds the executables the tests and nts bench start (the
// S3 server versitygw, the nats CLI) from the versions pinned in the
// repository's tools module, a module of its own so that users of the nts
// packages never depend on them.
package tools

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// modulePath is the module whose go.mod marks the repository root.
const modulePath = "github.com/nats-tiered/nts"

// packages maps the tool names Build accepts to their packages, each
// pinned by a tool directive in <root>/tools/go.mod.
var packages = map[string]string{
	"versitygw": "github.com/versity/versitygw/cmd/versitygw",
	"nats":      "github.com/nats-io/natscli/nats",
}

// Build returns the path of an executable of the named tool ("versitygw"
// or "nats"), built from the version pinned in the repository's tools
// module, which must be found above the working directory, with the go
// command. built reports whether it ran go build.
//
// Binaries are kept in <user cache dir>/nts-tools/<hash>/, where the hash
// covers the tools module's go.mod and go.sum, the Go version and the
// platform, so runs after the first reuse them and a version change builds
// anew. Processes building at the same time never see a partial binary.
func Build(name string) (path string, built bool, err error) {
	pkg, ok := packages[name]
	if !ok {
		return "", false, fmt.Errorf("tools: unknown tool %q", name)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", false, err
	}
	toolsDir := filepath.Join(root, "tools")
	key, err := toolsKey(toolsDir, pkg)
	if err != nil {
		return "", false, err
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "nts-tools", key)
	exe := name
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	path = filepath.Join(dir, exe)
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		return path, false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, err
	}
	// Build into a directory of our own and rename into place, so test
	// processes building at the same time never see a partial binary.
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp)
	gobin, err := goCommand()
	if err != nil {
		return "", false, err
	}
	cmd := exec.Command(gobin, "build", "-C", toolsDir, "-o", filepath.Join(tmp, exe), pkg)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", true, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	if err := os.Rename(filepath.Join(tmp, exe), path); err != nil {
		return "", true, err
	}
	return path, true, nil
}

// toolsKey hashes what decides a tool's binary: the tools module's go.mod and
// go.sum, the package, the Go version and the platform.
func toolsKey(toolsDir, pkg string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(toolsDir, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%s\n%s/%s\n%s\n", pkg, runtime.GOOS, runtime.GOARCH, runtime.Version())
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// goCommand finds the go command: on PATH (go test puts its own GOROOT/bin
// first), else under $GOROOT.
func goCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("the go command is not on PATH")
}

// RepoRoot returns the repository root: the nearest directory, walking up
// from the working directory, whose go.mod declares module
// github.com/nats-tiered/nts.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if moduleOf(filepath.Join(dir, "go.mod")) == modulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// moduleOf returns the module path a go.mod declares, or "".
func moduleOf(gomod string) string {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}
