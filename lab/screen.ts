/**
 * The serial console as a person would have seen it. Firmware draws on the serial port like on a
 * screen: SeaBIOS's sga mirrors the text screen with a cursor move before every character,
 * iPXE's menu paints rows by cursor position, and under BIOS iPXE also writes each character
 * straight to the port, so a stream with the escape sequences stripped reads `iiPPXXEE` and a
 * menu comes out one letter per line.
 *
 * {@linkcode SerialScreen} keeps a character grid, applies what a VT100 would (cursor moves,
 * erases, carriage return, line feed, backspace, tab; colours and modes are ignored), and hands
 * out a row as a line when a line feed leaves it, when it scrolls off the top, when the screen is
 * cleared, and at the end; a row is handed out again only if its text changed, and runs of blank
 * rows become one. Rows drawn by cursor moves alone (a menu) are handed out when the screen is
 * cleared, so a menu appears once, as drawn.
 *
 * @module
 */

// The firmware screens are 25 rows: sga scrolls by a line feed on row 25, OVMF and iPXE
// address rows 1–25. Lines are kept up to 256 columns and not wrapped: a kernel's long lines stay
// whole (sga wraps at 80 by itself).
const ROWS = 25;
const COLS = 256;

/** A terminal grid fed with raw serial text; see the module doc. */
export class SerialScreen {
  #rows: string[][] = [];
  #emitted: (string | null)[] = [];
  // Rows a cursor move drew on (sga, menus): a line feed there is no end of a line.
  #addressed: boolean[] = [];
  #row = 0;
  #col = 0;
  #pending = "";
  #lastBlank = false;

  /** `onLine` gets each line as it is settled. */
  constructor(readonly onLine: (line: string) => void) {
    this.#reset();
  }

  /** Feeds raw text from the port (chunks may split an escape sequence). */
  write(text: string): void {
    const s = this.#pending + text;
    this.#pending = "";
    let i = 0;
    while (i < s.length) {
      const c = s[i]!;
      if (c === "\x1b") {
        const n = this.#escape(s, i);
        if (n === 0) {
          this.#pending = s.slice(i);
          return;
        }
        i += n;
        continue;
      }
      i++;
      if (c === "\r") this.#col = 0;
      else if (c === "\n") this.#lineFeed();
      else if (c === "\b") this.#col = Math.max(0, this.#col - 1);
      else if (c === "\t") this.#col = Math.min(COLS - 1, (Math.floor(this.#col / 8) + 1) * 8);
      else if (c >= " " && c !== "\x7f") this.#put(c);
    }
  }

  /**
   * Whether `text` is on the screen now, handed out or not: a row drawn by cursor moves (sga's
   * mirror of a boot sector's output) is handed out only when it leaves the screen, and a
   * marker printed last and then halted at must still count the moment it shows.
   */
  shows(text: string): boolean {
    return this.#rows.some((row) => row.join("").includes(text));
  }

  /** Hands out every row not handed out yet; call when the port closes. */
  end(): void {
    this.#flush(0, ROWS);
  }

  #reset(): void {
    this.#rows = Array.from({ length: ROWS }, () => []);
    this.#emitted = new Array(ROWS).fill(null);
    this.#addressed = new Array(ROWS).fill(false);
  }

  #put(c: string): void {
    if (this.#col >= COLS) return;
    const row = this.#rows[this.#row]!;
    while (row.length < this.#col) row.push(" ");
    row[this.#col] = c;
    this.#col++;
  }

  #text(r: number): string {
    return this.#rows[r]!.join("").trimEnd();
  }

  /** Hands out rows `from` … `to - 1` whose text changed since they were last handed out. */
  #flush(from: number, to: number): void {
    // Trailing blank rows of the screen are not output: nothing was drawn there.
    let last = to - 1;
    while (last >= from && this.#text(last) === "" && this.#emitted[last] === null) last--;
    for (let r = from; r <= last; r++) this.#emit(r);
  }

  #emit(r: number): void {
    const text = this.#text(r);
    if (this.#emitted[r] === text) return;
    this.#emitted[r] = text;
    if (text === "") {
      if (this.#lastBlank) return;
      this.#lastBlank = true;
    } else this.#lastBlank = false;
    this.onLine(text);
  }

  #moveTo(row: number, col: number): void {
    this.#row = Math.max(0, Math.min(ROWS - 1, row));
    this.#col = Math.max(0, Math.min(COLS - 1, col));
  }

  #lineFeed(): void {
    if (this.#row < ROWS - 1) {
      // A line feed settles the row it leaves when that row was written line by line (a
      // kernel's log); sga follows its own moves with line feeds in the middle of a row.
      if (!this.#addressed[this.#row]) this.#flush(0, this.#row + 1);
      this.#row++;
      return;
    }
    // Scroll: the top row leaves the screen.
    this.#emit(0);
    this.#rows.shift();
    this.#rows.push([]);
    this.#emitted.shift();
    this.#emitted.push(null);
    this.#addressed.shift();
    this.#addressed.push(false);
  }

  /** Applies the escape sequence at `s[i]`; its length, or 0 when it is cut off. */
  #escape(s: string, i: number): number {
    if (i + 1 >= s.length) return 0;
    const kind = s[i + 1]!;
    if (kind !== "[") {
      // ESC ( B, ESC ) 0 … take one more character; ESC = > 7 8 c take none.
      if (kind === "(" || kind === ")") return i + 2 < s.length ? 3 : 0;
      return 2;
    }
    let j = i + 2;
    while (j < s.length && /[0-?]/.test(s[j]!)) j++;
    while (j < s.length && /[ -/]/.test(s[j]!)) j++;
    if (j >= s.length) return 0;
    this.#csi(s.slice(i + 2, j), s[j]!);
    return j - i + 1;
  }

  #csi(params: string, final: string): void {
    if (/^[=?>]/.test(params)) return; // private modes (`ESC[=3h`, `ESC[?25l`): nothing to draw
    const args = params.split(";").map((p) => (p === "" ? NaN : Number(p)));
    const n = (k: number, fallback = 1) => Number.isFinite(args[k]!) ? args[k]! : fallback;
    switch (final) {
      case "H":
      case "f":
        this.#moveTo(n(0) - 1, n(1) - 1);
        this.#addressed[this.#row] = true;
        return;
      case "A":
        this.#row = Math.max(0, this.#row - n(0));
        return;
      case "B":
        this.#moveTo(this.#row + n(0), this.#col);
        return;
      case "C":
        this.#col = Math.min(COLS - 1, this.#col + n(0));
        return;
      case "D":
        this.#col = Math.max(0, this.#col - n(0));
        return;
      case "G":
        this.#col = Math.max(0, Math.min(COLS - 1, n(0) - 1));
        return;
      case "K": {
        const row = this.#rows[this.#row]!;
        const mode = n(0, 0);
        if (mode === 0) row.length = Math.min(row.length, this.#col);
        else if (mode === 1) {
          for (let c = 0; c <= this.#col && c < row.length; c++) {
            row[c] = " ";
          }
        } else row.length = 0;
        return;
      }
      case "J":
        if (n(0, 0) === 2 || n(0, 0) === 3) {
          // A cleared screen: what was on it has been seen. The cursor goes home, as firmware
          // expects (ANSI.SYS did so; sga writes the next character without a move).
          this.#flush(0, ROWS);
          this.#reset();
          this.#moveTo(0, 0);
        } else if (n(0, 0) === 0) {
          this.#rows[this.#row]!.length = Math.min(this.#rows[this.#row]!.length, this.#col);
          for (let r = this.#row + 1; r < ROWS; r++) this.#rows[r] = [];
        }
        return;
      default:
        // Colours (m), scroll regions (r), reports (n) …: nothing a reader needs.
        return;
    }
  }
}

/** The lines a whole captured console shows; see {@linkcode SerialScreen}. */
export function screenLines(raw: string): string[] {
  const out: string[] = [];
  const s = new SerialScreen((line) => out.push(line));
  s.write(raw);
  s.end();
  return out;
}
