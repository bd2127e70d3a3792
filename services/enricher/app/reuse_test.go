package app

import (
	"testing"
	"time"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/enrichment"
)

// Only a live run's CPF found through Diretrix alone is New (its payload's
// look-up is skipped); a CPF the records knew, a replay, or an event
// without sources keeps the look-up.
func TestReuseMarksOnlyDiretrixOnlyLiveCPFsNew(t *testing.T) {
	e := &Enricher{ReuseTTL: time.Hour}
	live := events.Envelope{Source: events.SourceWebhook}
	replay := events.Envelope{Source: events.SourceReplay}
	cases := []struct {
		name string
		env  events.Envelope
		p    events.ResolvedPerson
		new  bool
	}{
		{"phone from Diretrix", live, events.ResolvedPerson{PhoneSource: enrichment.SourceDiretrix}, true},
		{"email from Diretrix", live, events.ResolvedPerson{EmailSource: enrichment.SourceDiretrix}, true},
		{"both from Diretrix", live, events.ResolvedPerson{PhoneSource: enrichment.SourceDiretrix, EmailSource: enrichment.SourceDiretrix}, true},
		{"phone from the records", live, events.ResolvedPerson{PhoneSource: enrichment.SourceDB}, false},
		{"one each", live, events.ResolvedPerson{PhoneSource: enrichment.SourceDiretrix, EmailSource: enrichment.SourceDB}, false},
		{"no sources (an older event)", live, events.ResolvedPerson{}, false},
		{"replay", replay, events.ResolvedPerson{PhoneSource: enrichment.SourceDiretrix}, false},
	}
	for _, c := range cases {
		r := e.reuse(c.env, c.p)
		if r.New != c.new {
			t.Errorf("%s: New = %v, want %v", c.name, r.New, c.new)
		}
		if c.env.Source != events.SourceReplay && r.MaxAge != time.Hour {
			t.Errorf("%s: MaxAge = %v, want the TTL", c.name, r.MaxAge)
		}
	}
}
