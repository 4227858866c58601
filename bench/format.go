package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// num formats x with thousands separators and digits fitting its size.
func num(x float64) string {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return "–"
	case math.Abs(x) >= 1000:
		return group(strconv.FormatFloat(math.Round(x), 'f', 0, 64))
	case math.Abs(x) >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case math.Abs(x) >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	case math.Abs(x) >= 1:
		return strconv.FormatFloat(x, 'f', 2, 64)
	case x == 0:
		return "0"
	}
	return strconv.FormatFloat(x, 'g', 2, 64)
}

func group(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// spread is a stat's range over the rounds and its half-width relative to
// the median.
func spread(s stat) string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 {
		return "1 round"
	}
	rel := 0.0
	if s.Median != 0 {
		rel = 100 * (s.Max - s.Min) / 2 / math.Abs(s.Median)
	}
	return fmt.Sprintf("%s–%s (±%.0f %%)", num(s.Min), num(s.Max), rel)
}

// ratio formats a/b as "×r".
func ratio(a, b float64) string {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) || a == 0 {
		return "–"
	}
	r := a / b
	if r >= 10 {
		return fmt.Sprintf("×%.0f", r)
	}
	return fmt.Sprintf("×%.2f", r)
}

// table is a markdown table.
type table struct {
	head []string
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) String() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.head, " | ") + " |\n|")
	for range t.head {
		b.WriteString("---|")
	}
	b.WriteByte('\n')
	for _, r := range t.rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}
