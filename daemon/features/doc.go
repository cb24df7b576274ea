// Package features holds bgplbd's feature gates (component-base featuregate): bgplb's
// own gates and the logging gates of component-base (LoggingAlphaOptions,
// LoggingBetaOptions, ContextualLogging), all set with --feature-gates. The daemon's
// main adds the flag and hands Gate to logsapi.ValidateAndApply; code asks
// Gate.Enabled(<name>). The README's "Feature gates" table lists bgplb's gates.
package features
