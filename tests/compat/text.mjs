// Text for the compat scenarios.

/**
 * `length` characters that gzip does not shrink much (a linear congruential sequence over
 * letters, digits and a space), so a long message stays long on a compressed connection.
 */
export function longText(length) {
  const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ';
  let state = 12345;
  let text = '';
  while (text.length < length) {
    state = (state * 1103515245 + 12345) % 2147483648;
    text += letters[state % letters.length];
  }
  return text;
}
