package safefile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadRefusesWhatIsNotAPlainFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 2048), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/dev/zero", "character device"},
		{fifo, "FIFO"},
		{dir, "directory"},
		{big, "more than the 1024"},
		{filepath.Join(dir, "missing"), "no such file"},
	} {
		start := time.Now()
		_, err := Read(tc.path, 1024)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Read(%s): %v; want an error saying %q", tc.path, err, tc.want)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("Read(%s) took %s", tc.path, el)
		}
		if err := Check(tc.path, 1024); err == nil {
			t.Errorf("Check(%s): no error", tc.path)
		}
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ content, want, err string }{
		{"s3cret\n", "s3cret", ""},
		{"  s3cret \r\n", "s3cret", ""},
		{"\n", "", "empty"},
		{"", "", "empty"},
		{"two words", "", "space"},
		{"bad\x1b[31m", "", "control"},
		{strings.Repeat("a", MaxTokenBytes+1), "", "more than"},
	} {
		p := filepath.Join(dir, "token")
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadToken(p)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("token file %q: %q, %v; want %q", tc.content, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("token file %q: %q, %v; want an error saying %q", tc.content, got, err, tc.err)
		}
	}
}

func FuzzReadToken(f *testing.F) {
	f.Add([]byte("s3cret\n"))
	f.Add([]byte("\x00\xff"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "token")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		tok, err := ReadToken(p)
		if err != nil {
			return
		}
		if tok == "" || strings.ContainsAny(tok, " \t\r\n") || len(tok) > MaxTokenBytes {
			t.Fatalf("token %q accepted", tok)
		}
		for _, r := range tok {
			if r < 0x21 || r > 0x7e {
				t.Fatalf("token %q accepted with %q", tok, r)
			}
		}
	})
}
