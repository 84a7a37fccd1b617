package notify

import (
	"context"
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/declinemon/declinemon/alerting"
)

// JSONL writes alert records as alerts-v1 JSON lines (--alerts-out).
type JSONL struct{ W io.Writer }

// Send implements the pipeline's AlertSink.
func (j JSONL) Send(_ context.Context, alerts []alerting.Alert) error {
	for i := range alerts {
		line, err := alerts[i].MarshalJSONLine()
		if err != nil {
			return err
		}
		if _, err := j.W.Write(line); err != nil {
			return fmt.Errorf("writing alert: %w", err)
		}
	}
	return nil
}

// Log writes alert records to the service log.
type Log struct{ Log *zap.Logger }

// Send implements the pipeline's AlertSink.
func (l Log) Send(_ context.Context, alerts []alerting.Alert) error {
	for _, a := range alerts {
		l.Log.Warn("alert", zap.String("alert_id", a.ID), zap.String("state", a.State), zap.Stringer("kind", a.Kind),
			zap.String("scope_type", a.ScopeType), zap.String("scope_id", a.ScopeID), zap.String("cause", a.Cause),
			zap.Time("detected_at", a.DetectedAt), zap.String("summary", a.Summary))
	}
	return nil
}
