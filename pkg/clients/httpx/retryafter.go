package httpx

import (
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var retryAfterText = regexp.MustCompile(`^(\d+(?:\.\d+)?)\s*([a-z]+)\.?$`)

// ParseRetryAfter reads a Retry-After value: delay seconds ("120"), an
// HTTP-date, a Go duration ("1m30s") or text such as "1 minute" or
// "30 seconds" (C2S sends text). ok is false when v is empty or unreadable.
// Dates in the past yield 0.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return secs(f)
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d, true
		}
		return 0, true
	}
	v = strings.ToLower(v)
	if d, err := time.ParseDuration(v); err == nil {
		return max(d, 0), true
	}
	m := retryAfterText.FindStringSubmatch(v)
	if m == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	switch m[2] {
	case "s", "sec", "secs", "second", "seconds", "segundo", "segundos":
	case "m", "min", "mins", "minute", "minutes", "minuto", "minutos":
		f *= 60
	case "h", "hr", "hrs", "hour", "hours", "hora", "horas":
		f *= 3600
	default:
		return 0, false
	}
	return secs(f)
}

func secs(f float64) (time.Duration, bool) {
	if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	if f > float64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(f * float64(time.Second)), true
}
