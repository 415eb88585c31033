# queue_4to4 in Python: 4 producer(s) -> 4 consumer(s) through one
# queue.Queue(1024). usage: python3 4to4.py [N]
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from flow import run

run(4, "queue_4to4")
