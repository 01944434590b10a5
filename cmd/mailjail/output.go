package main

import (
	"encoding/json"
	"io"
	"time"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func fmtUntil(u *time.Time) string {
	if u == nil {
		return "permanent"
	}
	return fmtTime(*u)
}
