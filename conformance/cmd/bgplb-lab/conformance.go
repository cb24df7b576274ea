package main

import (
	"github.com/spf13/cobra"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/labsuite"
)

// newFaultCmd is bgplb-conformance's --faults-exec for the lab.
func newFaultCmd(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "fault REQUEST [ARGS...]",
		Short: "Raise a fault in the lab for bgplb-conformance --faults-exec (capabilities, signal-daemon, kill-router-bgp, start-router-bgp, pause-apiserver, node-routes)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := lab.Open(*dir)
			if err != nil {
				return err
			}
			return labsuite.FaultCommand(cmd.Context(), l, args, cmd.OutOrStdout())
		},
	}
}

// newSuiteBaseCmd applies the conformance suite's base configuration to the lab.
func newSuiteBaseCmd(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "suite-base",
		Short: "Create the pool, BGPPeer(s) and advertisement bgplb-conformance expects (what make conformance applies)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Open(*dir)
			if err != nil {
				return err
			}
			s, err := labsuite.New(l)
			if err != nil {
				return err
			}
			if err := labsuite.ApplyBase(cmd.Context(), s.LB); err != nil {
				return err
			}
			if l.Opts.IPv6 {
				return labsuite.ApplyDualStack(cmd.Context(), s.LB)
			}
			return nil
		},
	}
}
