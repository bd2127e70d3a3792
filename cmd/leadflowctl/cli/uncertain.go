package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/leadflow/leadflow/pkg/ops"
)

func (a *app) uncertainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "uncertain",
		Short: "List, confirm or repost uncertain deliveries (a message that may or may not be on the lead)",
		Long: `A delivery is uncertain when a message post lost its reply (a timeout, a
dropped connection or a 5xx after it was sent) and the lead in C2S lists no
messages, so leadflow cannot tell whether the seller sees it. C2S does not
deduplicate, so leadflow never posts it again on its own: the notifications
ledger marks it uncertain, the run ends uncertain in the trace, the event is
dead-lettered with the reason "uncertain delivery", and
leadflow_uncertain_deliveries_open counts it.

Look at the lead in C2S, then either:
  confirm <lead> <run>  the message is there: mark it sent, post nothing
  repost <lead> <run>   it is not: post it once more (at most once, however
                        often you ask)`,
	}
	cmd.AddCommand(a.uncertainList(), a.uncertainConfirm(), a.uncertainRepost())
	return cmd
}

func (a *app) uncertainList() *cobra.Command {
	var leadID string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List deliveries waiting for an operator: lead, run, stage, status, route, attempts, since",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := a.ops(cmd.Context(), false, true)
			if err != nil {
				return err
			}
			list, err := o.UncertainList(cmd.Context(), leadID)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.io.Out, list)
			}
			tw := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LEAD\tRUN\tSTAGE\tSTATUS\tROUTE\tATTEMPTS\tSINCE")
			for _, e := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.LeadID, e.RunID, e.Stage, e.Status, dash(e.Route), e.Attempts,
					e.UpdatedAt.UTC().Format(time.RFC3339))
			}
			fmt.Fprintf(tw, "%d delivery(ies) waiting\n", len(list))
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&leadID, "lead", "", "only this lead")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) uncertainConfirm() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "confirm <lead_id> <run_id>",
		Short: "The message is on the lead: mark the delivery sent without posting",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.ops(cmd.Context(), true, true)
			if err != nil {
				return err
			}
			res, err := o.UncertainConfirm(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return a.resolution(res, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) uncertainRepost() *cobra.Command {
	var asJSON bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "repost <lead_id> <run_id>",
		Short: "The message is not on the lead: post it once more (at most once)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := a.ops(cmd.Context(), true, true)
			if err != nil {
				return err
			}
			res, err := o.UncertainRepost(cmd.Context(), args[0], args[1], wait)
			if err != nil {
				return err
			}
			return a.resolution(res, asJSON)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "wait this long for the notifier to post it (0 = do not wait)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) resolution(r *ops.Resolution, asJSON bool) error {
	if asJSON {
		return writeJSON(a.io.Out, r)
	}
	switch r.Status {
	case ops.ResolvedAlreadySent:
		fmt.Fprintf(a.io.Out, "lead %s run %s: already sent; nothing done\n", r.LeadID, r.RunID)
	case ops.ResolvedConfirmed:
		fmt.Fprintf(a.io.Out, "lead %s run %s: confirmed (marked sent, nothing posted; %d dead letter(s) removed)\n", r.LeadID, r.RunID, r.DeadLetters)
	case ops.ResolvedQueued:
		fmt.Fprintf(a.io.Out, "lead %s run %s: repost queued as %s; check with `leadflowctl uncertain list` or `leadflowctl trace %s`\n",
			r.LeadID, r.RunID, r.MsgID, r.LeadID)
	default:
		fmt.Fprintf(a.io.Out, "lead %s run %s: repost done, delivery %s (route %s)\n", r.LeadID, r.RunID, r.Status, dash(r.Route))
		if r.Status != "sent" {
			return fmt.Errorf("the repost ended %s", r.Status)
		}
	}
	return nil
}
