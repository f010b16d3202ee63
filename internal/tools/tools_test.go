package tools

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if wd, _ := filepath.Abs("."); !strings.HasPrefix(wd, root) || filepath.Base(filepath.Dir(wd)) != "internal" {
		t.Fatalf("RepoRoot() = %q for working directory %q", root, wd)
	}
}

func TestBuildUnknownTool(t *testing.T) {
	if _, _, err := Build("curl"); err == nil || !strings.Contains(err.Error(), `unknown tool "curl"`) {
		t.Fatalf("Build(curl): %v", err)
	}
}
