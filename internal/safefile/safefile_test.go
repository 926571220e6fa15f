package safefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
