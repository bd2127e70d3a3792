package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/leadflow/leadflow/pkg/backbone/failure"
	"github.com/leadflow/leadflow/pkg/clients/c2s"
	"github.com/leadflow/leadflow/pkg/store/runs"
)

func (a *app) dlqCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, requeue and purge dead letters (leads.dlq)",
		Long: `Events a stage could not process (malformed, permanently refused upstream,
or out of retries) land on leads.dlq with the stage and the reason. Fix the
cause, then requeue them: the original event goes back to its original subject
with a new message id, and the dead letter is deleted.`,
	}
	cmd.AddCommand(a.dlqList(), a.dlqShow(), a.dlqRequeue(), a.dlqPurge())
	return cmd
}

func (a *app) dlqList() *cobra.Command {
	var stage string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters: sequence, stage, reason, time, lead id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := a.ops(cmd.Context(), true, false)
			if err != nil {
				return err
			}
			list, err := o.DLQList(cmd.Context(), stage)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.io.Out, list)
			}
			tw := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tSTAGE\tFAILED AT\tLEAD\tREASON")
			for _, d := range list {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", d.Seq, d.Stage, d.FailedAt.UTC().Format(time.RFC3339), dash(d.LeadID), oneLine(d.Reason, 100))
			}
			fmt.Fprintf(tw, "%d dead letter(s)\n", len(list))
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&stage, "stage", "", "only this stage (service name, e.g. enricher, or consumer name)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) dlqShow() *cobra.Command {
	var reveal bool
	cmd := &cobra.Command{
		Use:   "show <seq>",
		Short: "Show one dead letter with its original event (personal data masked unless --reveal)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := parseSeq(args[0])
			if err != nil {
				return err
			}
			o, err := a.ops(cmd.Context(), true, false)
			if err != nil {
				return err
			}
			doc, err := o.DLQShow(cmd.Context(), seq, reveal)
			if err != nil {
				return notFound(err, seq)
			}
			_, err = fmt.Fprintln(a.io.Out, string(doc))
			return err
		},
	}
	cmd.Flags().BoolVar(&reveal, "reveal", false, "show personal data unmasked (names, phones, emails, CPFs, payloads)")
	return cmd
}

func (a *app) dlqRequeue() *cobra.Command {
	var all, asJSON bool
	var stage string
	cmd := &cobra.Command{
		Use:   "requeue <seq> | --all [--stage X]",
		Short: "Send dead letters back to their original subject with a new message id",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return usageError{errors.New("give either one sequence or --all")}
			}
			if stage != "" && !all {
				return usageError{errors.New("--stage goes with --all")}
			}
			o, err := a.ops(cmd.Context(), true, false)
			if err != nil {
				return err
			}
			if !all {
				seq, err := parseSeq(args[0])
				if err != nil {
					return err
				}
				r, err := o.DLQRequeue(cmd.Context(), seq)
				if err != nil {
					return notFound(err, seq)
				}
				if asJSON {
					return writeJSON(a.io.Out, r)
				}
				fmt.Fprintf(a.io.Out, "requeued %d to %s as %s (lead %s)\n", r.Seq, r.Subject, r.MsgID, dash(r.LeadID))
				return nil
			}
			sum, err := o.DLQRequeueAll(cmd.Context(), stage)
			if sum != nil {
				if asJSON {
					_ = writeJSON(a.io.Out, sum)
				} else {
					for _, r := range sum.Requeued {
						fmt.Fprintf(a.io.Out, "requeued %d to %s (lead %s)\n", r.Seq, r.Subject, dash(r.LeadID))
					}
					for _, f := range sum.Failed {
						fmt.Fprintf(a.io.Out, "failed %s\n", f)
					}
					fmt.Fprintf(a.io.Out, "%d requeued, %d failed\n", len(sum.Requeued), len(sum.Failed))
				}
			}
			if err != nil {
				return err
			}
			if len(sum.Failed) > 0 {
				return fmt.Errorf("%d dead letter(s) could not be requeued", len(sum.Failed))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "requeue every dead letter")
	cmd.Flags().StringVar(&stage, "stage", "", "with --all: only this stage")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) dlqPurge() *cobra.Command {
	var yes bool
	var stage string
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Delete dead letters for good (asks for confirmation)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := a.ops(cmd.Context(), true, false)
			if err != nil {
				return err
			}
			n, err := o.DLQCount(cmd.Context())
			if err != nil {
				return err
			}
			if !yes {
				what := fmt.Sprintf("all %d dead letter(s)", n)
				if stage != "" {
					what = "the dead letters of stage " + stage
				}
				fmt.Fprintf(a.io.Err, "This deletes %s; they cannot be requeued afterwards. Type \"yes\" to go on: ", what)
				line, _ := bufio.NewReader(a.io.In).ReadString('\n')
				if strings.TrimSpace(line) != "yes" {
					return errors.New("purge cancelled")
				}
			}
			purged, err := o.DLQPurge(cmd.Context(), stage)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.io.Out, "purged %d dead letter(s)\n", purged)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().StringVar(&stage, "stage", "", "only this stage")
	return cmd
}

func (a *app) traceCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "trace <lead_id>",
		Short: "Show a lead's runs and stage outcomes (the HTTP trace, for a terminal)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.ops(cmd.Context(), false, true)
			if err != nil {
				return err
			}
			t, err := o.Trace(cmd.Context(), args[0])
			if failure.Is(err, failure.KindNotFound) {
				return fmt.Errorf("lead %s: the pipeline never saw it", args[0])
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.io.Out, t)
			}
			return RenderTrace(a.io.Out, t)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (the same document as GET /api/v1/leads/{id})")
	return cmd
}

// RenderTrace prints a trace as two tables: runs (newest first) and steps.
func RenderTrace(w interface{ Write([]byte) (int, error) }, t *runs.Trace) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "lead %s: %d run(s)\n\n", t.LeadID, len(t.Runs))
	fmt.Fprintln(tw, "RUN\tSOURCE\tREPLAY\tSTATUS\tCPFS\tENTITIES\tSTARTED\tTOOK\tERROR")
	for _, r := range t.Runs {
		took := "running"
		if r.FinishedAt != nil {
			took = age(r.FinishedAt.Sub(r.StartedAt))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", short(r.RunID), r.Source, dash(r.ReplayID), r.Status,
			r.CPFsProcessed, r.EntitiesStored, r.StartedAt.UTC().Format(time.RFC3339), took, oneLine(dash(r.Error), 80))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "AT\tRUN\tSTAGE\tOUTCOME\tDETAIL")
	for _, s := range t.Steps {
		detail := string(s.Detail)
		if s.Error != "" {
			detail = "error: " + s.Error
		}
		if detail == "{}" || detail == "null" {
			detail = ""
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.At.UTC().Format("2006-01-02 15:04:05.000"), short(s.RunID), s.Stage, s.Outcome, oneLine(detail, 120))
	}
	return tw.Flush()
}

func (a *app) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Stream, consumers (pending, ack pending, redelivered), dead letters and oldest ages",
		Long: `status prints the numbers an on-call person needs first: the LEADS stream,
each durable consumer's pending (not yet delivered), ack-pending (in a
handler) and redelivered counts with the age of its oldest unacknowledged
message, and the dead-letter count with the oldest dead letter's age. With
--db it adds the runs that have not finished.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := a.ops(cmd.Context(), true, a.dbURL != "")
			if err != nil {
				return err
			}
			s, err := o.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.io.Out, s)
			}
			tw := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "stream %s: %d messages, %d bytes, seq %d..%d\n", s.Stream.Name, s.Stream.Messages, s.Stream.Bytes, s.Stream.FirstSeq, s.Stream.LastSeq)
			for _, subj := range sortedKeys(s.Stream.Subjects) {
				fmt.Fprintf(tw, "  %s\t%d\n", subj, s.Stream.Subjects[subj])
			}
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "CONSUMER\tSUBJECT\tPENDING\tACK PENDING\tREDELIVERED\tOLDEST\tPAUSED")
			for _, c := range s.Consumers {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%t\n", c.Name, c.Subject, c.Pending, c.AckPending, c.Redelivered, age(c.OldestAge), c.Paused)
			}
			fmt.Fprintln(tw)
			fmt.Fprintf(tw, "dead letters: %d (oldest %s)\n", s.DeadLetters, age(s.OldestDeadAge))
			fmt.Fprintf(tw, "oldest pending message: %s\n", age(s.OldestLeadAge))
			if s.UnfinishedRuns != nil {
				fmt.Fprintf(tw, "unfinished runs: %d (oldest %s)\n", *s.UnfinishedRuns, age(s.OldestRunAge))
			}
			if s.UncertainDeliveries != nil {
				fmt.Fprintf(tw, "uncertain deliveries: %d (leadflowctl uncertain list)\n", *s.UncertainDeliveries)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) c2sCmd() *cobra.Command {
	var hookURL, actions string
	cmd := &cobra.Command{
		Use:   "c2s",
		Short: "Register the product's webhook with C2S (the move from Make.com)",
		Long: `c2s subscribes or unsubscribes leadflow's webhook URL with Contact2Sale,
one call per action (POST /integration/leads/subscribe|unsubscribe). It uses
C2S_BASE_URL and C2S_TOKEN from the environment. The hook URL must carry the
webhook secret as ?token=<WEBHOOK_SECRET> (C2S cannot send headers); when it
does not and WEBHOOK_SECRET is set, the secret is added.`,
	}
	cmd.PersistentFlags().StringVar(&hookURL, "url", "", "public webhook URL, e.g. https://leadflow.example.com/api/v1/webhooks/c2s?token=...")
	cmd.PersistentFlags().StringVar(&actions, "actions", c2s.ActionCreate+","+c2s.ActionUpdate, "comma-separated hook actions: on_create_lead, on_update_lead, on_close_lead")
	run := func(subscribe bool) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			u, acts, err := a.hookArgs(hookURL, actions)
			if err != nil {
				return err
			}
			client, err := a.c2sClient()
			if err != nil {
				return err
			}
			verb, call := "subscribed", client.Subscribe
			if !subscribe {
				verb, call = "unsubscribed", client.Unsubscribe
			}
			for _, act := range acts {
				ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
				err := call(ctx, u, act)
				cancel()
				if err != nil {
					return fmt.Errorf("%s: %w", act, err)
				}
				fmt.Fprintf(a.io.Out, "%s %s -> %s\n", verb, act, maskToken(u))
			}
			return nil
		}
	}
	cmd.AddCommand(&cobra.Command{Use: "subscribe", Short: "Subscribe the webhook URL to each action", Args: cobra.NoArgs, RunE: run(true)},
		&cobra.Command{Use: "unsubscribe", Short: "Unsubscribe the webhook URL from each action", Args: cobra.NoArgs, RunE: run(false)},
		&cobra.Command{
			Use:   "list",
			Short: "Show what to register (C2S documents no endpoint that lists subscriptions)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				u, acts, err := a.hookArgs(hookURL, actions)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.io.Out, "C2S documents no endpoint that lists webhook subscriptions (contracts c2s/API.md),")
				fmt.Fprintln(a.io.Out, "so this cannot ask C2S what is registered. Subscribing is idempotent: run")
				fmt.Fprintln(a.io.Out, "`leadflowctl c2s subscribe` again to be sure. The registration should be:")
				for _, act := range acts {
					fmt.Fprintf(a.io.Out, "  %s -> %s\n", act, maskToken(u))
				}
				return nil
			},
		})
	return cmd
}

func (a *app) c2sClient() (*c2s.Client, error) {
	token := a.io.Getenv("C2S_TOKEN")
	if token == "" {
		return nil, usageError{errors.New("C2S_TOKEN is not set")}
	}
	return c2s.New(c2s.Config{BaseURL: a.io.Getenv("C2S_BASE_URL"), Token: token})
}

// hookArgs validates the URL (absolute http(s), carrying the webhook
// secret) and the actions.
func (a *app) hookArgs(raw, actions string) (string, []string, error) {
	if raw == "" {
		return "", nil, usageError{errors.New("--url is required")}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", nil, usageError{errors.New("--url must be an absolute http(s) URL")}
	}
	q := u.Query()
	if q.Get("token") == "" {
		secret := a.io.Getenv("WEBHOOK_SECRET")
		if secret == "" {
			return "", nil, usageError{errors.New("--url must carry ?token=<WEBHOOK_SECRET> (or set WEBHOOK_SECRET)")}
		}
		q.Set("token", secret)
		u.RawQuery = q.Encode()
	}
	var acts []string
	for _, act := range strings.Split(actions, ",") {
		act = strings.TrimSpace(act)
		switch act {
		case "":
			continue
		case c2s.ActionCreate, c2s.ActionUpdate, c2s.ActionClose:
			acts = append(acts, act)
		default:
			return "", nil, usageError{fmt.Errorf("unknown action %q", act)}
		}
	}
	if len(acts) == 0 {
		return "", nil, usageError{errors.New("--actions lists no action")}
	}
	return u.String(), acts, nil
}

// maskToken hides the webhook secret when printing a hook URL.
func maskToken(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unprintable URL]"
	}
	q := u.Query()
	if q.Get("token") != "" {
		q.Set("token", "***")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func parseSeq(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, usageError{fmt.Errorf("%q is not a stream sequence", s)}
	}
	return n, nil
}

func notFound(err error, seq uint64) error {
	if failure.Is(err, failure.KindNotFound) {
		return fmt.Errorf("no dead letter at sequence %d", seq)
	}
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-3]) + "..."
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
