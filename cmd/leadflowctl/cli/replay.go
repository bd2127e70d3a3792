package cli

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/leadflow/leadflow/pkg/backbone/events"
	"github.com/leadflow/leadflow/pkg/ops"
)

func (a *app) replayCmd() *cobra.Command {
	var req ops.ReplayRequest
	var leadsFile string
	var quiet, asJSON bool
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-run leads through the pipeline from stored events",
		Long: `replay selects events of one lead subject (leads.received by default) and
publishes a NEW event per selected lead, with source "replay", a replay id and a
new run id. The original events are read with an ordered consumer and never
touched. Each lead is replayed once, from its latest selected event; events that
were themselves replays are left out unless --source replay is given.

By default a replay costs nothing and is silent: the enricher re-derives the
core.* rows from stored Work API payloads, and the notifier records the run
without posting. --refresh pays for fresh Work API data; --notify posts the
message on the lead again.

Selectors combine (AND): --since/--until (RFC 3339, or a duration such as 2h
or 3d meaning that long ago), --from-seq/--to-seq (stream sequences,
inclusive), --lead (repeatable) or --leads-file (one id per line), --source.

The replay shows in each lead's trace (leadflowctl trace, GET /api/v1/leads/{id})
and in pipeline.replays. Re-running with the same --replay-id publishes only
what that replay has not published yet.`,
		Example: `  leadflowctl replay --since 2h --dry-run
  leadflowctl replay --lead 5f2c9a7e41b8d3c6a0e1f4b27d9c8e10 --refresh --notify
  leadflowctl replay --subject leads.enriched --from-seq 1200 --to-seq 1800 --rate 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if leadsFile != "" {
				ids, err := readLeadsFile(leadsFile)
				if err != nil {
					return usageError{err}
				}
				req.Leads = append(req.Leads, ids...)
			}
			o, err := a.ops(cmd.Context(), true, !req.DryRun)
			if err != nil {
				return err
			}
			var bar *progressbar.ProgressBar
			hooks := ops.ReplayHooks{}
			if !quiet && !req.DryRun && a.tty() {
				hooks.OnSelected = func(n int) {
					bar = progressbar.NewOptions(n,
						progressbar.OptionSetWriter(a.io.Err),
						progressbar.OptionSetDescription("replaying"),
						progressbar.OptionShowCount(),
						progressbar.OptionShowIts(),
						progressbar.OptionSetItsString("events"),
						progressbar.OptionSetPredictTime(true),
						progressbar.OptionThrottle(100*time.Millisecond),
						progressbar.OptionClearOnFinish(),
					)
				}
				hooks.OnEvent = func() { _ = bar.Add(1) }
			}
			sum, err := o.Replay(cmd.Context(), req, hooks)
			if bar != nil {
				_ = bar.Finish()
			}
			if sum != nil {
				if asJSON {
					_ = writeJSON(a.io.Out, sum)
				} else {
					printReplay(a, sum)
				}
			}
			if err != nil {
				return err
			}
			if sum.Failed > 0 {
				return fmt.Errorf("%d event(s) could not be replayed; re-run with --replay-id %s to retry them", sum.Failed, sum.ReplayID)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Subject, "subject", events.SubjectReceived, "lead subject to replay: "+strings.Join(events.LeadSubjects, ", "))
	f.StringVar(&req.Since, "since", "", "only events stored at or after this time (RFC 3339 or a duration ago: 2h, 3d)")
	f.StringVar(&req.Until, "until", "", "only events stored at or before this time (RFC 3339 or a duration ago)")
	f.Uint64Var(&req.FromSeq, "from-seq", 0, "first stream sequence (inclusive)")
	f.Uint64Var(&req.ToSeq, "to-seq", 0, "last stream sequence (inclusive)")
	f.StringArrayVar(&req.Leads, "lead", nil, "only this lead id (repeatable)")
	f.StringVar(&leadsFile, "leads-file", "", "only the lead ids in this file (one per line, # comments)")
	f.StringArrayVar(&req.Sources, "source", nil, "only events of this source: c2s_webhook, make, api, replay (repeatable)")
	f.StringVar(&req.ReplayID, "replay-id", "", "resume this replay instead of starting a new one")
	f.BoolVar(&req.Refresh, "refresh", false, "pay for fresh Work API data instead of reusing stored payloads")
	f.BoolVar(&req.Notify, "notify", false, "post the message on the lead again")
	f.BoolVar(&req.DryRun, "dry-run", false, "count and list the lead ids that would be replayed; publish nothing")
	f.Float64Var(&req.Rate, "rate", 0, "publish at most this many events per second (0 = unlimited)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return cmd
}

func (a *app) tty() bool {
	if a.io.TTY == nil {
		return false
	}
	return a.io.TTY()
}

func printReplay(a *app, s *ops.ReplaySummary) {
	w := a.io.Out
	if s.DryRun {
		for _, id := range s.Leads {
			fmt.Fprintln(w, id)
		}
		fmt.Fprintf(w, "dry run on %s: selected %d, would publish %d, skipped %d%s\n",
			s.Subject, s.Selected, s.ToPublish, s.Skipped, reasons(s.Reasons))
		return
	}
	fmt.Fprintf(w, "replay %s on %s: selected %d, published %d, skipped %d, failed %d%s\n",
		s.ReplayID, s.Subject, s.Selected, s.Published, s.Skipped, s.Failed, reasons(s.Reasons))
}

func reasons(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// readLeadsFile reads lead ids, one per line (commas and spaces also
// separate), ignoring blank lines and # comments.
func readLeadsFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("leads file: %w", err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		ids = append(ids, strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("leads file: %w", err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("leads file %s lists no lead id", path)
	}
	return ids, nil
}
