/** Seconds since the epoch. Injected everywhere so tests can move time (STYLE: dependencies passed in). */
export type Clock = () => number

export const systemClock: Clock = () => Math.floor(Date.now() / 1000)
