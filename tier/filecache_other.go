//go:build !unix

package tier

import "os"

// current reports whether the file at of's path is still of's file,
// unchanged since it was opened.
func (of *openFile) current() bool {
	fi, err := os.Stat(of.path)
	return err == nil && os.SameFile(fi, of.fi) && fi.Size() == of.fi.Size() && fi.ModTime().Equal(of.fi.ModTime())
}
