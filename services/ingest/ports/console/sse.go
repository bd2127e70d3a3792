package console

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// stream pushes server-rendered fragments as Server-Sent Events. next is
// called at once and then every period; it returns the event name and
// HTML to send ("" sends nothing this time) and whether the stream is over.
// The stream also ends with the request, the server (the console's
// context) or the session.
func (c *Console) stream(w http.ResponseWriter, r *http.Request, period time.Duration, next func() (event, html string, done bool)) {
	s := sessionOf(r)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	// A dropped connection is retried by the browser after 3 s.
	if _, err := fmt.Fprint(w, "retry: 3000\n\n"); err != nil {
		return
	}
	_ = rc.Flush()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		if c.sessions.byID(s.id) == nil {
			writeEvent(w, "end", "signed-out")
			_ = rc.Flush()
			return
		}
		event, html, done := next()
		if html != "" {
			if err := writeEvent(w, event, html); err != nil {
				return
			}
		}
		if done {
			writeEvent(w, "end", "done")
			_ = rc.Flush()
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func writeEvent(w http.ResponseWriter, event, data string) error {
	var b strings.Builder
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	for _, line := range strings.Split(strings.ReplaceAll(data, "\r", ""), "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	_, err := w.Write([]byte(b.String()))
	return err
}
