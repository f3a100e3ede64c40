import pickle, sys
import stackless

ch = stackless.channel()

def recurs(depth, level=1):
    print('enter level %s%d' % (level*' ', level))
    if level >= depth:
        ch.send('hi')
    if level < depth:
        recurs(depth, level+1)
    print('leave level %s%d' % (level*' ', level))

def demo(depth):
    t = stackless.tasklet(recurs)(depth)
    print(ch.receive())
    with open('tasklet.pickle', 'wb') as f:
        pickle.dump(t, f)

if __name__ == '__main__':
    if len(sys.argv) > 1:
        with open(sys.argv[1], 'rb') as f:
            t = pickle.load(f)
        t.insert()
        stackless.run()
    else:
        t = stackless.tasklet(demo)(9)
        stackless.run()
