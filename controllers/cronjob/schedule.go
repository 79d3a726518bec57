package cronjob

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
)

// nextScheduleDelta is added to requeue delays so that the next sync
// happens just after the scheduled time, not just before it.
const nextScheduleDelta = 100 * time.Millisecond

// tooManyMissed is the number of missed start times beyond which a
// TooManyMissedTimes warning is recorded.
const tooManyMissed = 100

type missed int

const (
	noneMissed missed = iota
	fewMissed
	manyMissed
)

// Parse reads a five-field schedule ("*/5 1-3 * * mon-fri": ranges, steps,
// lists, month and day names) or a macro (@hourly, @daily, @every 1h...),
// optionally prefixed with TZ=Zone, as upstream (robfig/cron's standard
// parser) does; a panic of the parser is an error.
func Parse(spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("parsing the schedule %q panicked: %v", spec, r)
		}
	}()
	return cron.ParseStandard(spec)
}

// Format is the schedule of cj as parsed: with the time zone of
// spec.timeZone prefixed (a schedule with its own TZ= is left as is, and
// so is one with an unknown zone).
func Format(cj *batchv1.CronJob) string {
	if strings.Contains(cj.Spec.Schedule, "TZ") {
		return cj.Spec.Schedule
	}
	if cj.Spec.TimeZone != nil {
		if _, err := time.LoadLocation(*cj.Spec.TimeZone); err != nil {
			return cj.Spec.Schedule
		}
		return "TZ=" + *cj.Spec.TimeZone + " " + cj.Spec.Schedule
	}
	return cj.Spec.Schedule
}

// mostRecent is the latest scheduled time not after now that has not
// been started: from the last schedule (or the CronJob's creation), or
// from now minus startingDeadlineSeconds when that is later and
// withDeadline. It answers the time counted from, the most recent missed
// time (nil: none), and how many were missed.
func mostRecent(cj *batchv1.CronJob, now time.Time, sched cron.Schedule, withDeadline bool) (time.Time, *time.Time, missed, error) {
	earliest := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		earliest = cj.Status.LastScheduleTime.Time
	}
	if withDeadline && cj.Spec.StartingDeadlineSeconds != nil {
		if d := now.Add(-time.Duration(*cj.Spec.StartingDeadlineSeconds) * time.Second); d.After(earliest) {
			earliest = d
		}
	}
	t1 := sched.Next(earliest)
	t2 := sched.Next(t1)
	switch {
	case now.Before(t1):
		return earliest, nil, noneMissed, nil
	case now.Before(t2):
		return earliest, &t1, noneMissed, nil
	}
	// Many: count them from the period rather than walking them all.
	period := int64(t2.Sub(t1).Round(time.Second).Seconds())
	if period < 1 {
		return earliest, nil, noneMissed, fmt.Errorf("time difference between two schedules is less than 1 second")
	}
	n := int64(now.Sub(t1).Seconds())/period + 1
	var latest time.Time
	// Walk from two periods before the estimate; schedules are not
	// always regular (months, day-of-week), the walk finds the real one.
	from := t1.Add(time.Duration((n-2)*period) * time.Second)
	for t := sched.Next(from); !t.After(now); t = sched.Next(t) {
		latest = t
	}
	m := fewMissed
	if n > tooManyMissed {
		m = manyMissed
	}
	if latest.IsZero() {
		return earliest, nil, m, nil
	}
	return earliest, &latest, m, nil
}

// NextScheduleTime is the time a Job should start for now (nil: none is
// due), and whether so many were missed that a warning is due.
func NextScheduleTime(cj *batchv1.CronJob, now time.Time, sched cron.Schedule) (*time.Time, bool, error) {
	_, t, m, err := mostRecent(cj, now, sched, true)
	if t == nil || t.After(now) {
		return nil, m == manyMissed, err
	}
	return t, m == manyMissed, err
}

// NextRequeue is how long until the next scheduled time after now (plus a
// small delta).
func NextRequeue(cj *batchv1.CronJob, now time.Time, sched cron.Schedule) time.Duration {
	earliest, t, m, err := mostRecent(cj, now, sched, false)
	switch {
	case err != nil:
		t = &now
	case t == nil && m == noneMissed:
		t = &earliest
	case t == nil:
		t = &now
	}
	return sched.Next(*t).Add(nextScheduleDelta).Sub(now)
}

// JobName is the name of the Job scheduled at t: the CronJob's name and
// the minutes since the epoch.
func JobName(cj *batchv1.CronJob, t time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, t.Unix()/60)
}
