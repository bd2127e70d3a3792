package httpx

import (
	"errors"
	"net"
)

// NeverSent reports whether a failed call provably never reached the
// upstream: the breaker or our own limiter refused it, or the connection
// could not be made (refused, DNS, unreachable). Such a call cost nothing
// and had no effect, so repeating it is always safe. A timeout or a dropped
// connection after sending is not one of these: its outcome is unknown.
func NeverSent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrBreakerOpen) || errors.Is(err, ErrLocalRate) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de)
}
