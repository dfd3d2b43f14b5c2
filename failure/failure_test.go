package failure

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClassification(t *testing.T) {
	base := errors.New("boom")
	perm := fmt.Errorf("decode: %w", Permanent(InvalidInput, base))
	if k, ok := PermanentKind(perm); !ok || k != InvalidInput {
		t.Fatalf("PermanentKind = %v %v", k, ok)
	}
	if !errors.Is(perm, base) {
		t.Fatal("permanent error does not unwrap")
	}
	if _, ok := PermanentKind(base); ok {
		t.Fatal("plain error classified permanent")
	}
	un := fmt.Errorf("write status: %w", Unavailable(base))
	if !IsUnavailable(un) || IsUnavailable(base) || IsUnavailable(perm) {
		t.Fatal("IsUnavailable misclassifies")
	}
	if !IsUnavailable(fmt.Errorf("x: %w", context.Canceled)) {
		t.Fatal("a canceled context must count as unavailable")
	}
	if Permanent(InvalidInput, nil) != nil || Unavailable(nil) != nil {
		t.Fatal("wrapping nil must give nil")
	}
}

func TestReasonIsBounded(t *testing.T) {
	if got := Reason("short"); got != "short" {
		t.Fatalf("a short reason changed: %q", got)
	}
	long := "é" + strings.Repeat("x", 600_000)
	got := Reason(long)
	if len(got) > MaxReason || !strings.HasSuffix(got, "(600002 bytes in all)") || !utf8.ValidString(got) {
		t.Fatalf("cut to %d bytes: ...%q", len(got), got[max(0, len(got)-40):])
	}
}
