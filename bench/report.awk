# report.awk - turns what bench/run.sh and bench/apps.sh gathered into the
# Markdown report (mode=md), the SVG chart of speedups over glibc
# (mode=svg), or the Markdown section on real programs alone (mode=apps,
# for apps.sh run by itself).
#
#   awk -v mode=md|svg|apps -v want="glibc osmem ..." -f report.awk TARGETS FACTS
#
# TARGETS has lines "target WORKLOAD speed MIN", "target WORKLOAD memory
# glibc" (peak RSS per peak live byte no worse than glibc's) and "target
# all rss MAX" (every workload's peak RSS at most MAX times glibc's).
# FACTS has the lines run.sh writes: machine KEY VALUE..., alloc NAME
# DESCRIPTION..., unit WORKLOAD DESCRIPTION..., summary WORKLOAD ALLOC
# RUNS FAILURES NS_MEDIAN NS_MIN NS_MAX RSS_MEDIAN RATIO_MEDIAN OPS
# PEAK_LIVE SPEEDUP_MEDIAN, syscalls WORKLOAD ALLOC COUNT and failure
# lines; and those apps.sh writes, which start with "app" (appsummary APP
# ALLOC RUNS FAILURES NS_MEDIAN NS_MIN NS_MAX KIB_MEDIAN SPEEDUP_MEDIAN
# RSS_RATIO_MEDIAN) or are the targets "target programs speed MIN" and
# "target programs rss MAX".  Written for any POSIX awk.
#
# SPDX-License-Identifier: MIT

function rest(from,   s, i) {
	s = $from
	for (i = from + 1; i <= NF; i++) s = s " " $i
	return s
}
function label(a) {
	return a == "osmem" ? "libosmem" : a
}
function human_ns(x) {
	if (x == "-" || x == "") return "-"
	if (x < 100) return sprintf("%.1f ns", x)
	if (x < 1000) return sprintf("%.0f ns", x)
	if (x < 1e6) return sprintf("%.2f µs", x / 1e3)
	if (x < 1e9) return sprintf("%.2f ms", x / 1e6)
	return sprintf("%.2f s", x / 1e9)
}
function have(w, a) {
	return ((w, a) in ns) && ns[w, a] != "-"
}
# The median of the per-repetition ratios glibc / allocator.
function speedup(w, a) {
	if (!have(w, a) || !have(w, "glibc")) return ""
	return sp[w, a] != "-" ? sp[w, a] : ns[w, "glibc"] / ns[w, a]
}
function times(v) {
	return sprintf(v < 0.1 ? "%.3fx" : "%.2fx", v)
}
function xml(s) {
	gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s)
	return s
}

$1 == "target" { tw[++nt] = $2; tkind[nt] = $3; tneed[nt] = $4; next }
$1 == "machine" { m[$2] = rest(3); next }
$1 == "alloc" { adesc[$2] = rest(3); next }
$1 == "unit" { wl[++nw] = $2; unit[$2] = rest(3); next }
$1 == "summary" {
	w = $2; a = $3
	nruns[w, a] = $4; fails[w, a] = $5
	ns[w, a] = $6; nsmin[w, a] = $7; nsmax[w, a] = $8
	rss[w, a] = $9; ratio[w, a] = $10; ops[w] = ($11 != "-" ? $11 : ops[w])
	live[w] = ($12 != "-" ? $12 : live[w])
	sp[w, a] = $13
	ran[w] = 1
	next
}
$1 == "syscalls" { sc[$2, $3] = $4; next }
$1 == "failure" { nf++; failure[nf] = rest(2); next }
$1 == "appmachine" { am[$2] = rest(3); next }
$1 == "appalloc" { aadesc[$2] = rest(3); next }
$1 == "appunit" { pl[++np] = $2; punit[$2] = rest(3); next }
$1 == "appnote" { npn++; pnote[npn] = rest(2); next }
$1 == "appfailure" { npf++; pfailure[npf] = rest(2); next }
$1 == "appsummary" {
	w = $2; a = $3
	pruns[w, a] = $4; pfails[w, a] = $5
	pns[w, a] = $6; pnsmin[w, a] = $7; pnsmax[w, a] = $8
	pkib[w, a] = $9; psp[w, a] = $10; prr[w, a] = $11
	next
}

END {
	na = split(want, alist, " ")
	# The workloads that ran, in the programs' order.
	nr = 0
	for (i = 1; i <= nw; i++) if (wl[i] in ran) run[++nr] = wl[i]
	# What real programs have to meet, given by apps.sh.
	pspeed = ""; prss = ""
	for (t = 1; t <= nt; t++)
		if (tw[t] == "programs") {
			if (tkind[t] == "speed") pspeed = tneed[t] + 0
			if (tkind[t] == "rss") prss = tneed[t] + 0
		}
	if (mode == "svg") svg()
	else if (mode == "apps") apps_md()
	else md()
}

# ---------------------------------------------------------------------------
# Real programs.

function phave(p, a) {
	return ((p, a) in pns) && pns[p, a] != "-"
}
# Whether libosmem met the targets for program P; the reason in pwhy.
function pmet(p,   v, r, ok) {
	pwhy = ""
	if (!phave(p, "osmem") || psp[p, "osmem"] == "-" || prr[p, "osmem"] == "-") {
		pwhy = "failed"
		return 0
	}
	v = psp[p, "osmem"] + 0; r = prr[p, "osmem"] + 0; ok = 1
	if (pspeed != "" && v < pspeed) {
		ok = 0
		pwhy = sprintf("**missed**: needs %.2fx its speed", pspeed / v)
	}
	if (prss != "" && r > prss) {
		ok = 0
		pwhy = (pwhy == "" ? "**missed**: " : pwhy ", ") sprintf("peak RSS %.2fx glibc's", r)
	}
	if (ok) pwhy = "met"
	return ok
}
function needs_text() {
	return (pspeed == "" ? "" : (pspeed == 1 ? "at least as fast as glibc" : "at least " pspeed "x glibc's speed")) \
		(pspeed != "" && prss != "" ? ", " : "") \
		(prss == "" ? "" : "peak RSS at most " prss "x glibc's")
}

function apps_md(   i, j, p, a, line, spread, hi, lo) {
	if (np == 0 && npn == 0) return
	print "## Real programs"
	print ""
	print "Each program ran " am["runs"] (am["runs"] == 1 ? " time" : " times") " with every allocator put in" \
		" with `LD_PRELOAD` (glibc: none), the allocators interleaved in an order that" \
		" rotates between repetitions, after one untimed run with glibc that fixed the" \
		" expected output.  Times are wall-clock medians, with the speedup over glibc" \
		" (the median of the ratios within each repetition; above 1 is faster)" \
		(am["scale"] != 1 ? "; the inputs were scaled by " am["scale"] : "") \
		".  This part took " am["elapsed"] " s."
	print ""
	if (np > 0) {
		line = "| program | what it does |"
		for (j = 1; j <= na; j++) if (alist[j] in aadesc)
			line = line " " label(alist[j]) " |"
		print line " spread |"
		line = "| --- | --- |"
		for (j = 1; j <= na; j++) if (alist[j] in aadesc)
			line = line " ---: |"
		print line " ---: |"
		for (i = 1; i <= np; i++) {
			p = pl[i]
			line = "| " p " | " punit[p] " |"
			spread = 0
			for (j = 1; j <= na; j++) {
				a = alist[j]
				if (!(a in aadesc)) continue
				if (!phave(p, a)) { line = line " failed |"; continue }
				line = line " " human_ns(pns[p, a])
				if (a != "glibc" && psp[p, a] != "-") line = line " (" times(psp[p, a]) ")"
				if (pfails[p, a] > 0) line = line " [" pfails[p, a] " failed]"
				line = line " |"
				if (pns[p, a] > 0 && (pnsmax[p, a] - pnsmin[p, a]) / pns[p, a] > spread)
					spread = (pnsmax[p, a] - pnsmin[p, a]) / pns[p, a]
			}
			print line sprintf(" %.0f%% |", spread * 100)
		}
		print ""
		print "Peak resident size in MiB (GNU time's maximum RSS: of the largest process" \
			" of the program), with the ratio to glibc's, and libosmem's targets:" \
			" " needs_text() "."
		print ""
		line = "| program |"
		for (j = 1; j <= na; j++) if (alist[j] in aadesc)
			line = line " " label(alist[j]) " |"
		print line " libosmem's targets |"
		line = "| --- |"
		for (j = 1; j <= na; j++) if (alist[j] in aadesc)
			line = line " ---: |"
		print line " --- |"
		for (i = 1; i <= np; i++) {
			p = pl[i]
			line = "| " p " |"
			for (j = 1; j <= na; j++) {
				a = alist[j]
				if (!(a in aadesc)) continue
				if (!phave(p, a)) { line = line " - |"; continue }
				line = line " " sprintf("%.1f", pkib[p, a] / 1024)
				if (a != "glibc" && prr[p, a] != "-") {
					if (a == "osmem" && prss != "" && prr[p, a] > prss) line = line " (**" times(prr[p, a]) "**)"
					else line = line " (" times(prr[p, a]) ")"
				}
				line = line " |"
			}
			if ("osmem" in aadesc) { pmet(p); line = line " " pwhy " |" }
			else line = line " - |"
			print line
		}
		print ""
	}
	for (i = 1; i <= npn; i++) print "- " pnote[i]
	for (i = 1; i <= npf; i++) print "- failed: `" pfailure[i] "`"
	if (npn + npf > 0) print ""
	if (mode == "apps") {
		for (j = 1; j <= na; j++)
			if (alist[j] in aadesc) print "- " label(alist[j]) ": " aadesc[alist[j]]
		print ""
	}
}

# ---------------------------------------------------------------------------

function md(   i, j, w, a, s, line, spread, hi, lo, t, v, g, met, nmet, need, load,
              worst, worstw, over, nover, p, rmax, rv) {
	split(m["load"], load, " ")
	print "# libosmem benchmarks"
	print ""
	print "| | |"
	print "| --- | --- |"
	print "| machine | " m["nproc"] " CPUs (`nproc`), " m["cpu"] " |"
	print "| kernel | " m["kernel"] " |"
	print "| C library | " m["libc"] " |"
	print "| date | " m["date"] " |"
	print "| libosmem | commit " m["commit"] " |"
	print "| command | `" m["command"] "` |"
	print "| configured with | `" m["configure"] "` |"
	for (j = 1; j <= na; j++) print "| " label(alist[j]) " | " adesc[alist[j]] " |"
	print ""
	print "Every workload ran " m["runs"] (m["runs"] == 1 ? " time" : " times") " with every allocator, the allocators" \
		" interleaved in an order that rotates between repetitions; the tables give" \
		" medians.  The speedup is glibc's time per operation divided by the" \
		" allocator's in the same repetition, the median of those ratios: above 1" \
		" is faster than glibc.  The workloads took " m["elapsed"] " s; the load" \
		" average was " load[1] " at its start and " load[2] " at its end, on " \
		m["nproc"] " CPUs, and other work on the machine shows in the spread."
	print ""
	print "## Time per operation (speedup over glibc)"
	print ""
	line = "| workload | operation |"
	for (j = 1; j <= na; j++) line = line " " label(alist[j]) " |"
	print line " spread |"
	line = "| --- | --- |"
	for (j = 1; j <= na; j++) line = line " ---: |"
	print line " ---: |"
	for (i = 1; i <= nr; i++) {
		w = run[i]
		line = "| " w " | " unit[w] " |"
		spread = 0
		for (j = 1; j <= na; j++) {
			a = alist[j]
			if (!have(w, a)) { line = line " failed |"; continue }
			line = line " " human_ns(ns[w, a])
			if (a != "glibc" && speedup(w, a) != "")
				line = line " (" times(speedup(w, a)) ")"
			if (fails[w, a] > 0) line = line " [" fails[w, a] " failed]"
			line = line " |"
			if (ns[w, a] > 0 && (nsmax[w, a] - nsmin[w, a]) / ns[w, a] > spread)
				spread = (nsmax[w, a] - nsmin[w, a]) / ns[w, a]
		}
		print line sprintf(" %.0f%% |", spread * 100)
	}
	print ""
	print "Spread: the largest (slowest - fastest) / median over the allocators of the row."
	print ""

	print "## libosmem against its targets"
	print ""
	print "| workload | target | libosmem | status |"
	print "| --- | --- | ---: | --- |"
	nmet = 0
	for (t = 1; t <= nt; t++) {
		w = tw[t]
		if (!(w in ran) && w != "all") continue
		if (tkind[t] == "speed") {
			need = tneed[t] + 0
			v = speedup(w, "osmem")
			if (v == "") { print "| " w " | at least " need "x glibc | - | failed |"; continue }
			met = v >= need
			if (met) s = sprintf("met, %.2fx (%.0f%%) to spare", v - need, (v / need - 1) * 100)
			else s = sprintf("**missed** by %.2fx: needs %.2fx its speed", need - v, need / v)
			print "| " w " | at least " need "x glibc | " times(v) " | " s " |"
		} else if (tkind[t] == "rss") {
			if (w != "all") continue
			need = tneed[t] + 0
			worst = ""; over = ""; nover = 0
			for (i = 1; i <= nr; i++) {
				if (!have(run[i], "osmem") || !have(run[i], "glibc") || rss[run[i], "glibc"] <= 0)
					continue
				v = rss[run[i], "osmem"] / rss[run[i], "glibc"]
				if (worst == "" || v > worst) { worst = v; worstw = run[i] }
				if (v > need) { nover++; over = over (over == "" ? "" : ", ") run[i] " " times(v) }
			}
			if (worst == "") continue
			met = nover == 0
			if (met) s = sprintf("met, %.2fx to spare", need - worst)
			else s = "**missed** in " nover (nover == 1 ? " workload: " : " workloads: ") over
			print "| every workload's peak RSS | at most " need "x glibc's | worst " times(worst) \
				" (" worstw ") | " s " |"
		} else {
			v = ratio[w, "osmem"]; g = ratio[w, "glibc"]
			if (v == "" || v == "-" || g == "" || g == "-") {
				print "| " w " | peak RSS / peak live no worse than glibc | - | failed |"
				continue
			}
			met = v + 0 <= g + 0
			if (met) s = sprintf("met: glibc %.3f, %.3f (%.1f%%) to spare", g, g - v, (1 - v / g) * 100)
			else s = sprintf("**missed** by %.3f: glibc %.3f, %.1f%% worse", v - g, g, (v / g - 1) * 100)
			print "| " w " | peak RSS / peak live no worse than glibc | " sprintf("%.3f", v) " | " s " |"
		}
		nmet += met; ntried++
	}
	if ("osmem" in aadesc)
		for (i = 1; i <= np; i++) {
			p = pl[i]
			met = pmet(p)
			v = phave(p, "osmem") && psp[p, "osmem"] != "-" ? times(psp[p, "osmem"]) ", RSS " times(prr[p, "osmem"]) : "-"
			print "| " p " (program) | " needs_text() " | " v " | " pwhy " |"
			nmet += met; ntried++
		}
	print ""
	print "libosmem meets " nmet " of these " ntried " targets."
	print ""

	print "## Fragmentation"
	print ""
	print "The `frag` workload's peak resident size per peak live byte, counting only" \
		" what the resident size grew by after the program had started; peak live" \
		" was " (("frag" in live) ? live["frag"] " KiB" : "not measured") "."
	print ""
	print "| allocator | peak RSS (KiB) | peak RSS growth / peak live |"
	print "| --- | ---: | ---: |"
	for (j = 1; j <= na; j++) {
		a = alist[j]
		if (!have("frag", a)) continue
		print "| " label(a) " | " rss["frag", a] " | " sprintf("%.3f", ratio["frag", a]) " |"
	}
	print ""

	print "## Peak resident size (KiB)"
	print ""
	rmax = ""
	for (t = 1; t <= nt; t++) if (tw[t] == "all" && tkind[t] == "rss") rmax = tneed[t] + 0
	if (rmax != "")
		print "The last column is libosmem's peak RSS over glibc's, in bold where it is" \
			" above " rmax " times glibc's." 
	print ""
	line = "| workload |"
	for (j = 1; j <= na; j++) line = line " " label(alist[j]) " |"
	print line " libosmem / glibc |"
	line = "| --- |"
	for (j = 1; j <= na; j++) line = line " ---: |"
	print line " ---: |"
	for (i = 1; i <= nr; i++) {
		w = run[i]
		line = "| " w " |"
		for (j = 1; j <= na; j++)
			line = line " " (have(w, alist[j]) ? rss[w, alist[j]] : "-") " |"
		rv = "-"
		if (have(w, "osmem") && have(w, "glibc") && rss[w, "glibc"] > 0) {
			rv = times(rss[w, "osmem"] / rss[w, "glibc"])
			if (rmax != "" && rss[w, "osmem"] / rss[w, "glibc"] > rmax) rv = "**" rv "**"
		}
		print line " " rv " |"
	}
	print ""

	apps_md()

	if (m["strace"] == "yes") {
		print "## Memory system calls"
		print ""
		nocache = 0
		for (i = 1; i <= nr; i++) if ((run[i], "osmem-nocache") in sc) nocache = 1
		print "brk, mmap, munmap, mremap and madvise in one further run of each, counted" \
			" by `strace -f -c`; loading the program and its libraries accounts for" \
			" a few dozen of them."
		if (nocache)
			print "The last column is libosmem once more with `OSMEM_MAP_CACHE=0`:" \
				" what its cache of freed mappings saves."
		print ""
		line = "| workload | operations |"
		for (j = 1; j <= na; j++) line = line " " label(alist[j]) " |"
		if (nocache) line = line " libosmem, no map cache |"
		print line
		line = "| --- | ---: |"
		for (j = 1; j <= na; j++) line = line " ---: |"
		if (nocache) line = line " ---: |"
		print line
		for (i = 1; i <= nr; i++) {
			w = run[i]
			line = "| " w " | " ops[w] " |"
			for (j = 1; j <= na; j++)
				line = line " " (((w, alist[j]) in sc) ? sc[w, alist[j]] : "-") " |"
			if (nocache)
				line = line " " (((w, "osmem-nocache") in sc) ? sc[w, "osmem-nocache"] : "-") " |"
			print line
		}
		print ""
	}

	if (nf > 0) {
		print "## Failed runs"
		print ""
		for (i = 1; i <= nf; i++) print "- `" failure[i] "`"
		print ""
	}
}

# ---------------------------------------------------------------------------

function ypos(v) {
	return top + ph * (log(yhi) - log(v)) / (log(yhi) - log(ylo))
}
# The chart has one group of bars per workload that ran, then one per
# program that ran; for group I and allocator A, the speedup over glibc
# ("" if none), the target ("" if none) and the times for the tooltip.
function gspeed(i, a,   p) {
	if (i <= nr) return speedup(run[i], a)
	p = gname[i]
	return phave(p, a) && psp[p, a] != "-" ? psp[p, a] + 0 : ""
}
function gtarget(i,   t) {
	if (i > nr) return pspeed
	for (t = 1; t <= nt; t++)
		if (tw[t] == run[i] && tkind[t] == "speed") return tneed[t] + 0
	return ""
}
function gtimes(i, a) {
	if (i <= nr) return human_ns(ns[run[i], a]) " vs glibc " human_ns(ns[run[i], "glibc"])
	return human_ns(pns[gname[i], a]) " vs glibc " human_ns(pns[gname[i], "glibc"])
}
function svg(   colour, n, j, i, a, w, v, lo, hi, steps, k, t, x, y0, y1, gx, bw, gw, x0,
              tick, lx, bars, need, ty, width, height, left, labels, ng) {
	colour["osmem"] = "#1f77b4"; colour["jemalloc"] = "#ff7f0e"
	colour["mimalloc"] = "#2ca02c"; colour["tcmalloc"] = "#9467bd"
	n = 0
	for (j = 1; j <= na; j++) if (alist[j] != "glibc") bars[++n] = alist[j]
	ng = 0
	for (i = 1; i <= nr; i++) gname[++ng] = run[i]
	for (i = 1; i <= np; i++) if (phave(pl[i], "glibc")) gname[++ng] = pl[i]

	# The range: every speedup, and at least 0.5 to 2, widened to ticks
	# of the 1-2-5 series.
	lo = 0.5; hi = 2
	for (i = 1; i <= ng; i++) {
		for (j = 1; j <= n; j++) {
			v = gspeed(i, bars[j])
			if (v == "") continue
			if (v < lo) lo = v
			if (v > hi) hi = v
		}
		if (gtarget(i) != "" && gtarget(i) > hi) hi = gtarget(i)
	}
	k = 0
	for (t = 0.001; t <= 10000; t *= 10) {
		steps[++k] = t; steps[++k] = 2 * t; steps[++k] = 5 * t
	}
	ylo = steps[1]; yhi = steps[k]
	for (i = 1; i <= k; i++) if (steps[i] <= lo * 0.999) ylo = steps[i]
	for (i = k; i >= 1; i--) if (steps[i] >= hi * 1.001) yhi = steps[i]

	left = 80; top = 92; ph = 330
	bw = 13; gw = n * bw + 22
	width = left + ng * gw + 30; height = top + ph + 100
	if (width < 760) width = 760
	printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" " \
		"viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\">\n",
		width, height, width, height
	printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
	printf "<text x=\"%d\" y=\"24\" font-size=\"17\" font-weight=\"bold\">%s</text>\n", left,
		"Speedup over glibc malloc, median of " m["runs"] " runs (above 1 = faster)"
	printf "<text x=\"%d\" y=\"43\" font-size=\"11\" fill=\"#444\">%s</text>\n", left,
		xml(m["nproc"] " CPUs, " m["cpu"] ", " m["kernel"] ", " m["libc"] ", " m["date"] \
		", libosmem " m["commit"])

	# Legend.
	lx = left
	for (j = 1; j <= n; j++) {
		printf "<rect x=\"%d\" y=\"56\" width=\"14\" height=\"14\" fill=\"%s\"/>\n", lx, colour[bars[j]]
		printf "<text x=\"%d\" y=\"68\" font-size=\"12\">%s</text>\n", lx + 19, label(bars[j])
		lx += 30 + 8 * length(label(bars[j]))
	}
	printf "<line x1=\"%d\" y1=\"63\" x2=\"%d\" y2=\"63\" stroke=\"black\" stroke-width=\"2.5\"/>\n", lx, lx + 16
	printf "<text x=\"%d\" y=\"68\" font-size=\"12\">libosmem target</text>\n", lx + 21
	lx += 135
	printf "<line x1=\"%d\" y1=\"63\" x2=\"%d\" y2=\"63\" stroke=\"#c00\" stroke-width=\"1.5\"/>\n", lx, lx + 16
	printf "<text x=\"%d\" y=\"68\" font-size=\"12\">glibc (1.0)</text>\n", lx + 21

	# Grid and y axis.
	for (i = 1; i <= k; i++) {
		tick = steps[i]
		if (tick < ylo * 0.999 || tick > yhi * 1.001) continue
		y0 = ypos(tick)
		printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
			left, y0, left + ng * gw, y0
		printf "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%gx</text>\n",
			left - 6, y0 + 4, tick
	}
	printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", left, top, left, top + ph
	printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n",
		left, top + ph, left + ng * gw, top + ph
	printf "<text transform=\"translate(20 %d) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n",
		top + ph / 2, "speedup: glibc time / allocator time (log scale)"
	printf "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%s</text>\n",
		left + ng * gw / 2, height - 10, (ng > nr ? "workload, then real program" : "workload")
	# The programs stand apart from the workloads, behind a dashed line.
	if (ng > nr && nr > 0) {
		x0 = left + nr * gw
		printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#666\" stroke-dasharray=\"4 3\"/>\n",
			x0, top - 8, x0, top + ph
		printf "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#444\">real programs</text>\n",
			x0 + 6, top - 2
	}

	# Bars from 1.0 to the speedup, one group per workload or program.
	y1 = ypos(1)
	for (i = 1; i <= ng; i++) {
		w = gname[i]
		gx = left + (i - 1) * gw + 11
		need = gtarget(i)
		for (j = 1; j <= n; j++) {
			a = bars[j]
			x = gx + (j - 1) * bw
			v = gspeed(i, a)
			if (v == "") {
				printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"middle\" fill=\"%s\">x</text>\n",
					x + bw / 2, y1 - 3, colour[a]
				continue
			}
			y0 = ypos(v)
			printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"%s\">" \
				"<title>%s, %s: %.2fx (%s)</title></rect>\n",
				x, (y0 < y1 ? y0 : y1), bw - 1, (y0 < y1 ? y1 - y0 : y0 - y1) + 0.5, colour[a],
				w, label(a), v, gtimes(i, a)
			if (a == "osmem") {
				# Above the bar, and above the target line when that is higher.
				ty = v >= 1 ? y0 - 4 : y0 + 11
				if (need != "" && v >= 1 && ypos(need) - 5 < ty)
					ty = ypos(need) - 5
				# Drawn last, so that no bar covers them.
				labels = labels sprintf("<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" " \
					"text-anchor=\"middle\" fill=\"%s\" stroke=\"white\" stroke-width=\"3\" " \
					"paint-order=\"stroke\">%s</text>\n",
					x + bw / 2, ty, colour[a],
					(v >= 10 ? sprintf("%.0f", v) : v >= 0.1 ? sprintf("%.2f", v) : sprintf("%.3f", v)))
			}
		}
		# The target, across libosmem's bar.
		if (need != "" && bars[1] == "osmem") {
			y0 = ypos(need)
			printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-width=\"2.5\"/>\n",
				gx - 3, y0, gx + bw + 2, y0
		}
		printf "<text transform=\"translate(%.1f %d) rotate(-40)\" font-size=\"11\" text-anchor=\"end\">%s</text>\n",
			gx + n * bw / 2, top + ph + 16, w
	}
	printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#c00\" stroke-width=\"1.5\"/>\n",
		left, y1, left + ng * gw, y1
	printf "%s", labels
	print "</svg>"
}
