package tasks

import (
	"strings"
	"testing"
)

func TestTailBuffer(t *testing.T) {
	tests := []struct {
		name        string
		limit       int
		writes      []string
		wantKept    string
		wantDropped int64
	}{
		{"empty", 8, nil, "", 0},
		{"under the limit", 8, []string{"ab", "cd"}, "abcd", 0},
		{"exactly the limit", 4, []string{"ab", "cd"}, "abcd", 0},
		{"small writes past the limit", 4, []string{"ab", "cd", "ef", "g"}, "defg", 3},
		{"one write larger than the limit", 4, []string{"abcdefgh"}, "efgh", 4},
		{"large write after small ones", 4, []string{"xy", "abcdefgh"}, "efgh", 6},
		{"many writes force compaction", 3, strings.Split("abcdefghijklmnopqrstuvwxyz", ""), "xyz", 23},
		{"cut at a line boundary", 8, []string{"line1\nline2\nl3\n"}, "l3\n", 12},
		{"no boundary to cut at", 4, []string{"abcdefgh"}, "efgh", 4},
		{"newline only at the end", 4, []string{"abcdef\n"}, "def\n", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTailBuffer(tt.limit)
			for _, w := range tt.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
				}
			}
			kept, dropped := b.tail()
			if string(kept) != tt.wantKept || dropped != tt.wantDropped {
				t.Errorf("tail() = %q, %d; want %q, %d", kept, dropped, tt.wantKept, tt.wantDropped)
			}
			if cap(b.buf) > 2*tt.limit+tt.limit {
				t.Errorf("buffer grew to %d bytes for a limit of %d", cap(b.buf), tt.limit)
			}
		})
	}
}

func TestLastLines(t *testing.T) {
	tests := []struct {
		in       string
		n, max   int
		expected string
	}{
		{"", 3, 100, ""},
		{"a\nb\nc\nd\n", 2, 100, "c\nd"},
		{"a\nb\n", 5, 100, "a\nb"},
		{"one long line", 3, 4, "line"},
		{"a\nbbbbbb\nc", 3, 5, "bbb\nc"},
		{"a\n\n\n", 2, 100, "a"},
	}
	for _, tt := range tests {
		if got := lastLines([]byte(tt.in), tt.n, tt.max); got != tt.expected {
			t.Errorf("lastLines(%q, %d, %d) = %q, want %q", tt.in, tt.n, tt.max, got, tt.expected)
		}
	}
}
