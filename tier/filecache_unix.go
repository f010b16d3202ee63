//go:build unix

package tier

import "syscall"

// current reports whether of's file is still the object at its path and
// unchanged since it was opened: it has a link (it was neither removed nor
// replaced by a rename), and its size and modification time are those it
// had. It asks the open file (fstat), not the path.
func (of *openFile) current() bool {
	fi, err := of.fh.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink > 0 && fi.Size() == of.fi.Size() && fi.ModTime().Equal(of.fi.ModTime())
}
