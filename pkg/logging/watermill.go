package logging

import (
	"github.com/ThreeDotsLabs/watermill"
	"github.com/rs/zerolog"
)

// Watermill adapts a zerolog logger to watermill.LoggerAdapter. Watermill
// only logs ids, topics and errors; message payloads never reach it.
type Watermill struct {
	log zerolog.Logger
}

// NewWatermill wraps log.
func NewWatermill(log zerolog.Logger) *Watermill { return &Watermill{log: log} }

func (w *Watermill) event(e *zerolog.Event, msg string, fields watermill.LogFields) {
	for k, v := range fields {
		e = e.Interface(k, v)
	}
	e.Msg(msg)
}

// Error implements watermill.LoggerAdapter.
func (w *Watermill) Error(msg string, err error, fields watermill.LogFields) {
	w.event(w.log.Error().Err(err), msg, fields)
}

// Info implements watermill.LoggerAdapter.
func (w *Watermill) Info(msg string, fields watermill.LogFields) {
	w.event(w.log.Info(), msg, fields)
}

// Debug implements watermill.LoggerAdapter.
func (w *Watermill) Debug(msg string, fields watermill.LogFields) {
	w.event(w.log.Debug(), msg, fields)
}

// Trace implements watermill.LoggerAdapter.
func (w *Watermill) Trace(msg string, fields watermill.LogFields) {
	w.event(w.log.Trace(), msg, fields)
}

// With implements watermill.LoggerAdapter.
func (w *Watermill) With(fields watermill.LogFields) watermill.LoggerAdapter {
	ctx := w.log.With()
	for k, v := range fields {
		ctx = ctx.Interface(k, v)
	}
	return &Watermill{log: ctx.Logger()}
}
