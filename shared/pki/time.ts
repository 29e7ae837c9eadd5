// Durations used across the PKI code.
export const DAY_MS = 24 * 60 * 60 * 1000;
