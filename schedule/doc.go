// Package schedule computes when beat tasks tick.
//
// A spec is one of
//
//	*/5 * * * *          five cron fields: minute hour day-of-month month day-of-week
//	0 */5 * * * *        six fields, with seconds first
//	@hourly              a descriptor: @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly
//	@every 1m30s         an interval: at least 1s, a whole number of milliseconds
//
// A cron spec or descriptor may start with "CRON_TZ=Zone " (or "TZ=Zone "),
// which overrides the time zone given to [Parse].
//
// Every replica of a deployment must compute the same ticks, since a tick's
// identity (its instant in UTC) is what the replicas deduplicate on. So ticks
// are pure functions of the spec: cron specs match the wall clock of their
// time zone, and "@every d" ticks at the multiples of d since the Unix epoch,
// not d after the process started as in robfig/cron. So an interval that
// does not divide a day, such as 7s, ticks at other times of day each day.
//
// # Daylight saving time
//
// robfig/cron, used for parsing and matching, skips a daily 02:30 job on the
// day the clocks spring forward past 02:30, and runs it twice on the day they
// fall back through it. Neither is what a once-a-day task should do, so
// this package decides per spec, much as Vixie cron does:
//
//   - A spec whose hour field matches every hour ("*", "0-23", @hourly) follows
//     elapsed time. Wall-clock times that the spring-forward jump skips do not
//     tick; the repeated hour of a fall-back ticks in both of its passes, as
//     they are different instants an hour apart.
//   - Any other spec (a fixed hour, like "30 2 * * *", @daily or "0 */6 * * *")
//     ticks once per wall-clock time. If it matches times that a jump skips,
//     it ticks once, at the first instant after the jump (03:00 after a jump
//     from 02:00 to 03:00). In the repeated hour it ticks only in the first
//     pass, in daylight saving time.
//
// The same holds for any change of a zone's UTC offset, not only for DST.
// In Europe/Berlin, where in 2024 the clocks jumped from 02:00 to 03:00 on
// March 31 and fell back from 03:00 to 02:00 on October 27:
//
//	spec          March 31 (local)          October 27 (local)
//	30 2 * * *    03:00 CEST                02:30 CEST (not again at 02:30 CET)
//	0 * * * *     01:00 CET, 03:00 CEST     01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET
//
// In America/New_York the repeated hour is 01:00-02:00 EDT/EST, so there a
// daily 02:30 task is moved to 03:00 EDT on the spring-forward day and
// ticks once, at 02:30 EST, on the fall-back day; a daily 01:30 task ticks
// at 01:30 EDT only.
//
// Ticks are whole seconds (or whole milliseconds for @every), and [Schedule.Next]
// is strictly increasing: no tick is produced twice.
package schedule
