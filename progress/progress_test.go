package progress

import (
	"bytes"
	"strings"
	"testing"
)

func TestPlainLinesAndBar(t *testing.T) {
	var plain bytes.Buffer
	b := New(&plain, "generate", 10, false)
	b.Set(10)
	b.Finish()
	if !strings.Contains(plain.String(), "generate: 10/10 (100.0%)") || strings.Contains(plain.String(), "\r") {
		t.Fatalf("plain output %q", plain.String())
	}
	var tty bytes.Buffer
	b = New(&tty, "generate", 4, true)
	b.Set(2)
	b.Finish()
	out := tty.String()
	if !strings.HasPrefix(out, "\rgenerate") || !strings.Contains(out, "50.0% 2/4") || !strings.HasSuffix(out, "\n") {
		t.Fatalf("bar output %q", out)
	}
}
