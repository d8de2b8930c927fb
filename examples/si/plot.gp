# si_md.png from in.md.lmp's output: (1) energy per atom and temperature against time of the
# model's run, (2) radial distribution function of the model against SW's.
#   gnuplot -e "label='model'; reference='sw'" plot.gp
# reads thermo_LABEL.dat, rdf_LABEL.dat and rdf_REFERENCE.dat in the current folder; `output`
# names the PNG (default si_md.png). An rdf file is one fix ave/time block: a header row, then
# one row per bin (index, r, g(r), coordination), read as its last 100 rows.
if (!exists("label")) label = 'model'
if (!exists("reference")) reference = 'sw'
if (!exists("output")) output = 'si_md.png'
bins = 100
last_block(file) = sprintf("< tail -n %d %s", bins, file)

set terminal pngcairo size 1400,560 font "sans,11"
set output output
set multiplot layout 1,2

set title sprintf("512-atom Si, %s: NVT 300 K then NVE", label)
set xlabel "time (ps)"
set ylabel "energy (eV/atom)"
set y2label "temperature (K)"
set ytics nomirror
set y2tics
set key below horizontal
set grid
plot "thermo_".label.".dat" using 2:4 with lines lw 2 title "potential energy", \
     "" using 2:5 with lines lw 2 title "total energy", \
     "" using 2:3 axes x1y2 with lines lw 1 lc rgb "#999999" title "temperature"

set title "radial distribution function, NVE average"
set xlabel "r (Å)"
set ylabel "g(r)"
unset y2label
unset y2tics
set ytics mirror
set key inside top right vertical
plot last_block("rdf_".label.".dat") using 2:3 with lines lw 2 title label, \
     last_block("rdf_".reference.".dat") using 2:3 with lines lw 2 dt 2 title reference

unset multiplot
