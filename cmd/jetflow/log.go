package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// newLogger returns the process's logger: human-readable when w is a terminal, JSON lines
// otherwise (for log collectors).
func newLogger(w io.Writer, level zerolog.Level) zerolog.Logger {
	out := w
	if isTerminal(w) {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

// natsLogger passes the embedded nats-server's log to zerolog. The server's notices (start-up
// banner, JetStream details) are logged at debug level, its debug and trace output at trace
// level. The first fatal error is also sent to fatal, so that start-up fails at once instead of
// waiting for a server that will never be ready.
type natsLogger struct {
	log   zerolog.Logger
	once  sync.Once
	fatal chan<- error
}

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }
func (l *natsLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }

func (l *natsLogger) Fatalf(format string, v ...any) {
	err := fmt.Errorf(format, v...)
	l.log.Error().Err(err).Msg("nats-server fatal error")
	l.once.Do(func() {
		select {
		case l.fatal <- err:
		default:
		}
	})
}
